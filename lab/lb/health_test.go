package lb

import (
	"strings"
	"testing"
)

const (
	annNLBTGAttrs = "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"
	annALBTGAttrs = "alb.ingress.kubernetes.io/target-group-attributes"
)

func TestGroupHealthComesFromBothControllersTargetGroupAttributes(t *testing.T) {
	top := load(t, "nlb-ip")
	s := top.Manifests.Services[len(top.Manifests.Services)-1]
	s.Annotations[annNLBTGAttrs] = "preserve_client_ip.enabled=true,target_group_health.dns_failover.minimum_healthy_targets.count=off," +
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage=50"
	m, err := Build(top)
	if err != nil {
		t.Fatal(err)
	}
	h := only(t, m, "Service default/web-pip").Listeners[0].Group.Health
	if h != (GroupHealth{DNSCount: DNSOff, RoutingPercent: 50}) {
		t.Errorf("NLB group health = %+v", h)
	}
	top = load(t, "alb-ingress")
	in := top.Manifests.Ingresses[0]
	if in.Annotations == nil {
		in.Annotations = map[string]string{}
	}
	in.Annotations[annALBTGAttrs] = "target_group_health.dns_failover.minimum_healthy_targets.percentage=60"
	if m, err = Build(top); err != nil {
		t.Fatal(err)
	}
	for _, g := range m.LBs[0].Groups() {
		if g.Health != (GroupHealth{DNSPercent: 60}) {
			t.Errorf("ALB group %s health = %+v", g.Name, g.Health)
		}
	}
}

func TestBadGroupHealthAttributesNameTheAnnotationAndKey(t *testing.T) {
	for v, want := range map[string]string{
		"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count=off": `"off" is not a number of targets from 1`,
		"target_group_health.dns_failover.minimum_healthy_targets.percentage=101":       `"101" is not off or a percentage from 1 to 100`,
		"target_group_health.dns_failover.minimum_healthy_targets.count=-2":             `"-2" is not off or a number`,
		"target_group_health.dns_failover.minimum_healthy_targets.count=1," +
			"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count=2": "DNS failover must come at or before routing failover",
	} {
		top := load(t, "nlb-ip")
		s := top.Manifests.Services[len(top.Manifests.Services)-1]
		s.Annotations[annNLBTGAttrs] = v
		_, err := Build(top)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), annNLBTGAttrs) {
			t.Errorf("%s: got %v, want an error naming the annotation and %q", v, err, want)
		}
	}
}

// Four targets in zone a, one in b: what a's node does as they fail.
func zonalGroup(h GroupHealth) (*TargetGroup, map[string]bool) {
	g := &TargetGroup{Name: "tg", Health: h, Targets: []Target{
		{Object: "a1", AZ: "a"}, {Object: "a2", AZ: "a"}, {Object: "a3", AZ: "a"}, {Object: "a4", AZ: "a"}, {Object: "b1", AZ: "b"}}}
	healthy := map[string]bool{"a1": true, "a2": true, "a3": true, "a4": true, "b1": true}
	return g, healthy
}

func objects(ts []Target) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Object)
	}
	return strings.Join(out, " ")
}

func TestRoutingFailoverSendsToEveryZoneTargetBelowThreshold(t *testing.T) {
	g, healthy := zonalGroup(GroupHealth{RoutingPercent: 50})
	h := func(t Target) bool { return healthy[t.Object] }
	healthy["a1"] = false
	if got := objects(g.Eligible("a", h)); got != "a2 a3 a4" {
		t.Errorf("3 of 4 healthy, threshold 50%%: the healthy ones, got %q", got)
	}
	healthy["a2"], healthy["a3"] = false, false
	if got := objects(g.Eligible("a", h)); got != "a1 a2 a3 a4" {
		t.Errorf("1 of 4 healthy, below 50%%: every target in the zone, got %q", got)
	}
	if got := objects(g.Eligible("b", h)); got != "b1" {
		t.Errorf("zone b is not below its threshold: got %q", got)
	}
	g.Health = GroupHealth{RoutingCount: 2}
	if got := objects(g.Eligible("a", h)); got != "a1 a2 a3 a4" {
		t.Errorf("1 healthy, count threshold 2: every target in the zone, got %q", got)
	}
	g.Health = GroupHealth{}
	if got := objects(g.Eligible("a", h)); got != "a4" {
		t.Errorf("default threshold (1 target): a4 alone, got %q", got)
	}
}

func TestDNSFailoverFollowsCountAndPercentage(t *testing.T) {
	g, healthy := zonalGroup(GroupHealth{DNSPercent: 50})
	h := func(t Target) bool { return healthy[t.Object] }
	if failed, _ := g.DNSFailed("a", h); failed {
		t.Error("all healthy: zone a in DNS")
	}
	healthy["a1"], healthy["a2"], healthy["a3"] = false, false, false
	failed, why := g.DNSFailed("a", h)
	if !failed || !strings.Contains(why, "1 healthy of 4 targets in a, below its DNS failover threshold (1 targets or 50%)") {
		t.Errorf("1 of 4 healthy, 50%%: zone a out of DNS, got %v %q", failed, why)
	}
	g.Health = GroupHealth{}
	if failed, _ := g.DNSFailed("a", h); failed {
		t.Error("default (1 target): one healthy keeps zone a in DNS")
	}
	healthy["a4"] = false
	if failed, _ := g.DNSFailed("a", h); !failed {
		t.Error("default: no healthy target, zone a out of DNS")
	}
	g.Health = GroupHealth{DNSCount: DNSOff}
	if failed, _ := g.DNSFailed("a", h); failed {
		t.Error("DNS failover off: zone a stays in DNS with no healthy target")
	}
}

func TestLoadBalancerLeavesDNSWhenAnyGroupFailsAway(t *testing.T) {
	ga, healthy := zonalGroup(GroupHealth{})
	gb := &TargetGroup{Name: "other", Targets: []Target{{Object: "x", AZ: "a"}, {Object: "y", AZ: "b"}}}
	healthy["x"], healthy["y"] = false, true
	l := &LoadBalancer{Kind: NLB, Nodes: []Node{{AZ: "a"}, {AZ: "b"}},
		Listeners: []Listener{{Port: 80, Group: ga}, {Port: 81, Group: gb}}}
	in, out := l.InDNS(func(_ *TargetGroup, t Target) bool { return healthy[t.Object] })
	if azsOf(in) != "b" || !strings.Contains(out["a"], "target group other has cross-zone off and no healthy target in a") {
		t.Errorf("group other has no healthy target in a: a leaves DNS, got %s, out %v", azsOf(in), out)
	}
}

func TestAnEmptyTargetGroupFailsNoZoneAway(t *testing.T) {
	g := &TargetGroup{Name: "checkout"}
	if failed, why := g.DNSFailed("a", func(Target) bool { return false }); failed {
		t.Errorf("a group with no targets took zone a out of DNS: %s", why)
	}
}
