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

func TestDOTGroupsInstancesByAZAndSubnetAndNamesAPodsENI(t *testing.T) {
	top, err := spec.Load("../../topologies/internet-to-pod.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(top, "x")
	d := DOT(p, top)
	for _, az := range top.AZs {
		if !strings.Contains(d, `label="AZ `+az.Name+`"`) {
			t.Errorf("no cluster for AZ %s", az.Name)
		}
	}
	if !strings.Contains(d, "subgraph cluster_internet") {
		t.Error("the internet side is not a group of its own")
	}
	pod := top.Pods[0]
	if !strings.Contains(d, `label="on `+spec.ENIName(pod.ENI)+`"`) {
		t.Errorf("no edge names the ENI pod %s sits on", pod.Name)
	}
	// Every namespace is drawn exactly once, grouped or not.
	for _, o := range Objects(p) {
		if n := strings.Count(d, id(o)+" [label="); n != 1 {
			t.Errorf("%s drawn %d times", o, n)
		}
	}
	// A node sits in the cluster of its primary ENI's subnet.
	n := top.Nodes[0]
	sub, _ := top.Subnet(n.ENIs[0].Subnet)
	i := strings.Index(d, `label="subnet `+sub.Name+" ")
	j := strings.Index(d, id(n.Name)+" [label=")
	if i < 0 || j < i {
		t.Errorf("node %s is not inside subnet %s's cluster", n.Name, sub.Name)
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

func TestLadderShowsTheAsidesOfARun(t *testing.T) {
	r := &walk.Report{Hops: []walk.HopResult{{Hop: walk.Hop{Point: walk.Point{Object: "pod51", Iface: "eth0"}, Dir: walk.Out, Leg: walk.Request}, Verdict: walk.Missing}}}
	asides := []walk.Aside{
		{Point: walk.Point{Object: "webclient", Iface: "eth0"}, Frame: 1, What: "DNS query 198.51.100.20 > 198.51.100.53"},
		{Point: walk.Point{Object: "node51", Iface: "eth0"}, Frame: 7, What: "ARP who-has 192.168.1.81 tell 192.168.1.50: no answer", Bad: true},
	}
	page := Ladder(r, "A3", "x.pcapng", asides...)
	for _, want := range []string{"Other packets of the run", "DNS query 198.51.100.20", `<tr class="bad"><td>7</td>`, ">webclient<", "eth0: ARP who-has 192.168.1.81"} {
		if !strings.Contains(page, want) {
			t.Errorf("the ladder page lacks %q", want)
		}
	}
}
