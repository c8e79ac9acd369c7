//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// Exercise is a support ticket: a lab with a hidden fault, the symptom a
// user reports, and the walk that passes again once the fault is fixed.
type Exercise struct {
	Ticket string
	Fault  string
}

// ticketOrder numbers the faults' tickets from 101. The order is not the
// faults' alphabetical one, so a ticket's number says nothing about its
// fault, and it only grows at the end, so a number never changes meaning
// (docs/exercises cite tickets by number). Every fault is in it once
// (TestEveryFaultHasOneTicket).
var ticketOrder = []string{
	"security-group-drop", "kube-proxy-jump-gone", "pod-static-arp", "health-check-blocked",
	"secondary-ip-unassigned", "rp-filter-strict", "external-snat", "missing-1536", "router-port-down",
	"target-blackholed", "target-port-closed", "nat-route-missing", "natgw-without-igw", "target-keepalive-short",
	"nft-service-element-missing",
}

// Exercises are the hands-on troubleshooting tickets, one per fault.
func Exercises() []Exercise {
	var out []Exercise
	for i, name := range ticketOrder {
		out = append(out, Exercise{Ticket: fmt.Sprintf("ticket-%d", 101+i), Fault: name})
	}
	return out
}

// ExerciseByTicket finds an exercise.
func ExerciseByTicket(ticket string) (Exercise, error) {
	for _, e := range Exercises() {
		if e.Ticket == ticket {
			return e, nil
		}
	}
	return Exercise{}, fmt.Errorf("no exercise %q (labctl exercise list shows them)", ticket)
}

// ExerciseLab is the lab an exercise runs in.
func ExerciseLab(ticket string) string { return "ex-" + ticket }

// StartExercise builds the ticket's lab and breaks it.
func StartExercise(ctx context.Context, t *spec.Topology, e Exercise) (string, error) {
	return StartExerciseAs(ctx, t, e, ExerciseLab(e.Ticket))
}

// StartExerciseAs is StartExercise with the lab named name (tests use their
// own prefix, so they never touch a user's exercise lab).
func StartExerciseAs(ctx context.Context, t *spec.Topology, e Exercise, name string) (string, error) {
	if _, err := Up(ctx, t, UpOptions{Name: name}); err != nil {
		return "", err
	}
	s, err := run.OpenSession(name)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := fault.Inject(s, e.Fault); err != nil {
		return "", err
	}
	b, _ := json.Marshal(e)
	return name, state.WriteFileAtomic(state.ExerciseFile(name), b, 0o600)
}

// CheckExercise runs the ticket's walk; it passes once the fault is fixed,
// whatever the fix was.
func CheckExercise(lab, outDir string) (*run.Run, Exercise, error) {
	var e Exercise
	b, err := os.ReadFile(state.ExerciseFile(lab))
	if err != nil {
		return nil, e, fmt.Errorf("lab %s is not an exercise (labctl exercise start <ticket>)", lab)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, e, err
	}
	s, err := run.OpenSession(lab)
	if err != nil {
		return nil, e, err
	}
	defer s.Close()
	w := s.Topo.Walk(fault.Faults[e.Fault].Walk)
	run, err := s.Walk(*w, outDir)
	return run, e, err
}
