package draw

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

func podNet(t *testing.T) *plan.Plan {
	t.Helper()
	top, err := spec.Load("../../topologies/pod-networking.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return plan.Build(top, "x")
}

func TestDOTHasEveryNamespaceAndVeth(t *testing.T) {
	p := podNet(t)
	d := DOT(p)
	for _, o := range Objects(p) {
		if !strings.Contains(d, id(o)+" [label=") {
			t.Errorf("no box for %s", o)
		}
	}
	if got := strings.Count(d, " -- "); got != len(p.Veths) {
		t.Errorf("%d edges, want one per veth (%d)", got, len(p.Veths))
	}
	if !strings.Contains(d, `headlabel="node81.eth1"`) {
		t.Error("edge labels lack the router port names")
	}
}

func TestMermaidIsAFlowchartWithEveryLink(t *testing.T) {
	p := podNet(t)
	m := Mermaid(p)
	if !strings.HasPrefix(m, "flowchart LR\n") || strings.Count(m, "---|") != len(p.Veths) {
		t.Errorf("mermaid:\n%s", m)
	}
}

func TestLadderDrawsEveryMoveAndMarksFailures(t *testing.T) {
	top, err := spec.Load("../../topologies/pod-networking.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := walk.Derive(top, *top.Walk("A3"), 1, "")
	if err != nil {
		t.Fatal(err)
	}
	r := &walk.Report{Expectation: e}
	for i, h := range e.Hops {
		v := walk.OK
		if i == 10 {
			v = walk.Missing
		}
		r.Hops = append(r.Hops, walk.HopResult{Hop: h, Verdict: v})
	}
	page := Ladder(r, "A3", "x.pcapng")
	if !strings.Contains(page, "<svg") || !strings.Contains(page, ">node81<") || !strings.Contains(page, "#c62828") {
		t.Error("ladder lacks the SVG, a lifeline, or the failed hop's colour")
	}
	if strings.Count(page, "<polygon") < 8 {
		t.Errorf("too few arrows: %d", strings.Count(page, "<polygon"))
	}
}
