package fault

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

func load(t *testing.T, name string) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func TestKeepAlivePlanTakesTheRulesTargetsAndLosesTheirFINsToEveryALBNodeOnTheirNodes(t *testing.T) {
	top := load(t, "alb-ingress")
	w := top.Walk("C4-rating")
	targets, rules, err := keepAlivePlan(top, *w)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := lb.Build(top)
	var alb *lb.LoadBalancer
	for _, l := range m.LBs {
		if l.Owner == "Ingress default/"+w.LoadBalancer {
			alb = l
		}
	}
	group := alb.Match(w.Path).Group
	if len(targets) != len(group.Targets) || len(rules) != len(targets)*len(alb.Nodes) {
		t.Fatalf("%d targets, %d rules; want the %d targets of %s and one rule per target and ALB node", len(targets), len(rules),
			len(group.Targets), group.Name)
	}
	names := map[string]bool{}
	for i, tg := range targets {
		p := top.Pod(tg.Object)
		if p == nil || p.Manifest != "Deployment default/rating" || tg.Node != p.Node || tg.IP != p.IP {
			t.Errorf("target %d: %+v is not a rating pod on its node", i, tg)
		}
		for j, n := range alb.Nodes {
			r := rules[i*len(alb.Nodes)+j]
			if r.Node != tg.Node || !strings.Contains(r.Spec, "-s "+tg.IP.String()+"/32 -d "+n.IP.String()+"/32 ") ||
				!strings.Contains(r.Spec, "--sport 80 --tcp-flags FIN FIN ") || !strings.Contains(r.Spec, "--hashlimit-name "+r.Name+" ") {
				t.Errorf("rule on %s: %s", r.Node, r.Spec)
			}
			if names[r.Node+"/"+r.Name] {
				t.Errorf("two rules on %s share the hashlimit table %s", r.Node, r.Name)
			}
			names[r.Node+"/"+r.Name] = true
		}
	}
}

func TestKeepAlivePlanRefusesATopologyWithoutAnALBAndWalksNotThroughOne(t *testing.T) {
	top := load(t, "clusterip")
	if _, _, err := keepAlivePlan(top, top.Walks[0]); err == nil || !strings.Contains(err.Error(), "topology clusterip has no ALB") {
		t.Errorf("clusterip: %v, want an error saying it has no ALB", err)
	}
	alb := load(t, "alb-ingress")
	w := *alb.Walk("C4-rating")
	w.LoadBalancer = "nothing"
	if _, _, err := keepAlivePlan(alb, w); err == nil || !strings.Contains(err.Error(), `loadBalancer "nothing" is not an ALB`) {
		t.Errorf("a walk to no ALB: %v", err)
	}
}
