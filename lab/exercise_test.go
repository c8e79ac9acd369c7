//go:build linux

package lab

import (
	"slices"
	"testing"
)

func TestEveryFaultHasOneTicket(t *testing.T) {
	tickets := slices.Clone(ticketOrder)
	slices.Sort(tickets)
	if !slices.Equal(tickets, FaultNames()) {
		t.Errorf("ticketOrder %v does not hold each fault of %v exactly once", ticketOrder, FaultNames())
	}
}

func TestTicketNumbersCitedInTheDocsKeepTheirFaults(t *testing.T) {
	// docs/exercises/13-ticket-108.md, 14-ticket-104.md, 15-ticket-111.md,
	// 16-ticket-114.md, 17-ticket-112.md, 18-ticket-113.md and
	// 19-ticket-115.md walk through seven; answers/07-local-policy.md names ticket-106.
	for ticket, fault := range map[string]string{"ticket-108": "missing-1536", "ticket-104": "health-check-blocked",
		"ticket-106": "rp-filter-strict", "ticket-111": "target-port-closed", "ticket-114": "target-keepalive-short",
		"ticket-112": "nat-route-missing", "ticket-113": "natgw-without-igw",
		"ticket-115": "nft-service-element-missing"} {
		e, err := ExerciseByTicket(ticket)
		if err != nil || e.Fault != fault {
			t.Errorf("%s is %q (%v), want %s", ticket, e.Fault, err, fault)
		}
	}
}
