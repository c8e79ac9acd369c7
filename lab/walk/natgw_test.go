package walk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func loadPrivate(t *testing.T) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/private-subnets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// natSteps lists a walk's NAT steps and the source the server sees.
func natSteps(t *testing.T, top *spec.Topology, walk string) (nat []string, seen string, e *Expectation) {
	t.Helper()
	e, err := Derive(top, *top.Walk(walk), 40000, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range e.Hops {
		if h.NAT != "" {
			nat = append(nat, h.NAT)
		}
		if h.Point == (Point{"server", "eth0"}) && h.Leg == Request {
			seen = h.Src.String()
		}
	}
	return nat, seen, e
}

func TestD3IsSNATedByTheNodeTheNATGatewayAndTheIGW(t *testing.T) {
	top := loadPrivate(t)
	nat, seen, e := natSteps(t, top, "D3")
	if seen != "203.0.113.10" {
		t.Errorf("the server must see the NAT gateway's Elastic IP, saw %q", seen)
	}
	want := []string{"node11 SNAT 192.168.1.12 -> 192.168.1.11", "nat-a SNAT 192.168.1.11 -> 192.168.0.10",
		"igw SNAT 192.168.0.10 -> 203.0.113.10", "igw DNAT 203.0.113.10 -> 192.168.0.10",
		"nat-a un-SNAT 192.168.0.10 -> 192.168.1.11", "node11 un-SNAT 192.168.1.11 -> 192.168.1.12"}
	if len(nat) != len(want) {
		t.Fatalf("NAT steps %q, want %q", nat, want)
	}
	for i := range want {
		if !strings.HasPrefix(nat[i], want[i]) {
			t.Errorf("NAT step %d is %q, want %q", i, nat[i], want[i])
		}
	}
	// The NAT gateway's ENI sees the packet twice each way: in from the
	// router, out back to it; the router's bridge of the public subnet too.
	count := map[string]int{}
	for _, h := range e.Hops {
		count[fmt.Sprintf("%s %s %s", h.Leg, h.Point, h.Dir)]++
	}
	for _, k := range []string{"request nat-a/eth0 in", "request nat-a/eth0 out", "reply nat-a/eth0 in", "reply nat-a/eth0 out",
		"request vpc/br-public-a out", "request vpc/br-public-a in", "request vpc/igw out"} {
		if count[k] != 1 {
			t.Errorf("hop %q appears %d times, want once (hops: %v)", k, count[k], count)
		}
	}
	for _, h := range e.Hops {
		if h.Point == (Point{"nat-a", "eth0"}) && h.Leg == Request && h.Dir == Out && h.SrcPort != 0 {
			t.Errorf("the NAT gateway picks the source port: its out hop must not pin it, got %d", h.SrcPort)
		}
	}
	found := false
	for _, p := range e.Points {
		found = found || p == (Point{"nat-a", "eth0"})
	}
	if !found {
		t.Errorf("the NAT gateway's eth0 must be a capture point: %v", e.Points)
	}
}

func TestD3ExternalSNATLeavesTheNodeWithThePodIP(t *testing.T) {
	top := loadPrivate(t)
	nat, seen, e := natSteps(t, top, "D3-external")
	if seen != "203.0.113.10" {
		t.Errorf("the server must see the NAT gateway's Elastic IP, saw %q", seen)
	}
	if len(nat) != 4 || !strings.HasPrefix(nat[0], "nat-a SNAT 192.168.1.22 -> 192.168.0.10") {
		t.Errorf("NAT steps %q, want the NAT gateway translating the pod IP first, no node SNAT", nat)
	}
	for _, h := range e.Hops {
		if h.Point == (Point{"node21", "eth0"}) && h.Leg == Request && h.Src.String() != "192.168.1.22" {
			t.Errorf("with external SNAT the pod's packet leaves node21 with the pod IP, got %s", h.Src)
		}
	}
}

func TestD3ExcludeKeepsThePodIPToAnExcludedCIDR(t *testing.T) {
	top := loadPrivate(t)
	nat, _, e := natSteps(t, top, "D3-exclude")
	if len(nat) == 0 || !strings.HasPrefix(nat[0], "nat-a SNAT 192.168.1.32") {
		t.Errorf("NAT steps %q: the excluded destination must reach the NAT gateway with the pod IP", nat)
	}
	if !strings.Contains(e.Hops[2].Why, "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS") {
		t.Errorf("the node hop must say why there is no SNAT: %q", e.Hops[2].Why)
	}
}

func TestD3IsolatedIsDroppedAtTheRouter(t *testing.T) {
	top := loadPrivate(t)
	_, seen, e := natSteps(t, top, "D3-isolated")
	last := e.Hops[len(e.Hops)-1]
	if seen != "" || last.Point != (Point{spec.RouterName, spec.BridgeName("isolated-a")}) || !strings.Contains(last.Why, "unreachable") {
		t.Errorf("a subnet without a default route must end at the router's bridge, ends at %s (%q)", last.Point, last.Why)
	}
}

func TestD3NATGatewayWithoutIGWRouteDropsAtTheRouter(t *testing.T) {
	top := loadPrivate(t)
	top.RouteTables[0].Routes = nil // the public table loses its IGW route
	_, seen, e := natSteps(t, top, "D3")
	last := e.Hops[len(e.Hops)-1]
	if seen != "" || last.Point != (Point{spec.RouterName, spec.BridgeName("public-a")}) || last.Src.String() != "192.168.0.10" {
		t.Errorf("the NAT gateway's SNATed packet must die at the router's public bridge, ends at %s from %s", last.Point, last.Src)
	}
}
