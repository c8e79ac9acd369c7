//go:build linux

package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// unitLabDir makes a state directory for a lab that exists only in a test,
// under a state root of the test's own, so it needs no root.
func unitLabDir(t *testing.T, name string) string {
	t.Helper()
	old := state.Root
	state.Root = t.TempDir()
	t.Cleanup(func() { state.Root = old })
	if err := state.Create(name); err != nil {
		t.Fatal(err)
	}
	return name
}

// Health changes are applied from every probe's goroutine at once; the
// record they publish must always parse and end with the newest state.
func TestConcurrentHealthChangesLeaveAWholeNewestRecord(t *testing.T) {
	labName := unitLabDir(t, "unit-lbhealth")
	g := &lb.TargetGroup{Name: "alb-x-web-80"}
	for i := range 40 {
		g.Targets = append(g.Targets, lb.Target{Object: fmt.Sprintf("pod%d", i), IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}),
			Port: 80, AZ: "us-east-1a"})
	}
	l := &lb.LoadBalancer{Name: "alb-x", Kind: lb.ALB, Rules: []lb.Rule{{Group: g}}}
	r := &lbRuntime{lab: labName, health: map[string]*TargetHealth{}, dirty: map[string]bool{}}
	for _, tg := range g.Targets {
		r.health[g.Name+"/"+tg.String()] = &TargetHealth{LB: l.Name, Group: g.Name, Target: tg.String(), Object: tg.Object,
			State: StateInitial, Reason: "a long reason that makes the record bigger than a page of the old file"}
	}
	r.publish(r.snapshot(nil))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				r.mu.Lock()
				h := r.health[g.Name+"/"+g.Targets[(w*50+i)%len(g.Targets)].String()]
				h.State, h.Reason = StateHealthy, ""
				r.pending++
				r.mu.Unlock()
				r.changed(l)
				if _, err := ReadHealth(labName); err != nil {
					t.Errorf("the record did not parse while changes were applied: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := ReadHealth(labName)
	if err != nil {
		t.Fatal(err)
	}
	for k, h := range got {
		if h.State != StateHealthy {
			t.Errorf("%s is %s in the record, healthy in memory", k, h.State)
		}
	}
	if len(got) != len(g.Targets) || r.pending != 0 {
		t.Errorf("%d targets recorded of %d, %d changes pending", len(got), len(g.Targets), r.pending)
	}
}

func TestAnNLBsHealthIsPublishedOnlyAfterItsRulesAreRestored(t *testing.T) {
	labName := unitLabDir(t, "unit-nlbhealth")
	top, err := spec.Load("../../topologies/nlb-instance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := lb.Build(top)
	if err != nil {
		t.Fatal(err)
	}
	l := m.LBs[0]
	g := l.Groups()[0]
	// Cross-zone on, so no node fails open to the sick target (with it
	// off, the target's own zone's node would: it is alone there).
	g.CrossZone = true
	r := &lbRuntime{lab: labName, health: map[string]*TargetHealth{}, dirty: map[string]bool{}}
	for _, tg := range g.Targets {
		r.health[g.Name+"/"+tg.String()] = &TargetHealth{LB: l.Name, Group: g.Name, Target: tg.String(), Object: tg.Object,
			State: StateHealthy}
	}
	r.publish(r.snapshot(nil))
	sick := g.Name + "/" + g.Targets[1].String()
	recorded := func() string {
		h, err := ReadHealth(labName)
		if err != nil {
			t.Fatal(err)
		}
		return h[sick].State
	}
	defer func(orig func(string, string, string) error) { applyNLB = orig }(applyNLB)
	var restores int
	fail := true
	applyNLB = func(lab, name, payload string) error {
		restores++
		if got := recorded(); got != StateHealthy {
			t.Errorf("the record says %s before the rules were restored", got)
		}
		if !strings.Contains(payload, g.Targets[0].IP.String()) || strings.Contains(payload, "--to-destination "+g.Targets[1].IP.String()) {
			t.Errorf("the rules should send to the healthy targets only:\n%s", payload)
		}
		if fail {
			return errors.New("restore failed")
		}
		return nil
	}
	mark := func() {
		r.mu.Lock()
		r.health[sick].State = StateUnhealthy
		r.pending++
		r.mu.Unlock()
	}
	mark()
	r.changed(l)
	if recorded() != StateHealthy || !r.dirty[l.Name] || r.pending != 0 {
		t.Fatalf("a failed restore must publish nothing and leave the LB to retry: record %s, dirty %v, pending %d",
			recorded(), r.dirty[l.Name], r.pending)
	}
	fail = false
	r.mu.Lock() // the retry the LB's next probe makes
	delete(r.dirty, l.Name)
	r.pending++
	r.mu.Unlock()
	r.changed(l)
	if recorded() != StateUnhealthy || restores != 2 || r.pending != 0 {
		t.Errorf("after the retry: record %s, %d restores, %d pending", recorded(), restores, r.pending)
	}
	if left, _ := filepath.Glob(filepath.Join(state.Dir(labName), "lb-health-*.tmp")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
