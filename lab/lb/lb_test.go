package lb

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

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

func only(t *testing.T, m *Model, owner string) *LoadBalancer {
	t.Helper()
	for _, l := range m.LBs {
		if l.Owner == owner {
			return l
		}
	}
	t.Fatalf("no load balancer for %s", owner)
	return nil
}

func TestInstanceNLBAsTheControllerBuildsIt(t *testing.T) {
	m, err := Build(load(t, "nlb-instance"))
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Service default/web")
	g := l.Listeners[0].Group
	if l.Scheme != "internal" || l.CrossZone || len(l.Nodes) != 3 || g.TargetType != TargetInstance || !g.PreserveClientIP {
		t.Errorf("scheme %s cross-zone %v nodes %d type %s preserve %v", l.Scheme, l.CrossZone, len(l.Nodes), g.TargetType, g.PreserveClientIP)
	}
	if len(g.Targets) != 3 || g.Targets[0].Port != 30080 {
		t.Errorf("every node should be a target on the NodePort: %+v", g.Targets)
	}
	hc := g.HealthCheck
	if hc.Protocol != "TCP" || hc.Port != 0 || hc.Healthy != 3 || hc.Unhealthy != 3 || hc.Interval.Seconds() != 10 {
		t.Errorf("LBC default health check expected (TCP traffic-port 10 s 3/3): %+v", hc)
	}
}

func TestLocalPolicyInstanceTargetsCheckHealthCheckNodePort(t *testing.T) {
	m, err := Build(load(t, "nodeport-local"))
	if err != nil {
		t.Fatal(err)
	}
	hc := only(t, m, "Service default/web").Listeners[0].Group.HealthCheck
	if hc.Protocol != "HTTP" || hc.Path != "/healthz" || hc.Port == 0 || hc.Healthy != 2 || hc.Timeout.Seconds() != 6 {
		t.Errorf("instance + Local wants HTTP healthCheckNodePort /healthz 6 s 2/2: %+v", hc)
	}
}

func TestIPTargetsDoNotPreserveTheClientUnlessAsked(t *testing.T) {
	m, err := Build(load(t, "nlb-ip"))
	if err != nil {
		t.Fatal(err)
	}
	if only(t, m, "Service default/web-ip").Listeners[0].Group.PreserveClientIP {
		t.Error("TCP ip targets preserve the client IP by default")
	}
	if !only(t, m, "Service default/web-pip").Listeners[0].Group.PreserveClientIP {
		t.Error("preserve_client_ip.enabled=true ignored")
	}
}

func TestIngressRulesFollowTheControllersOrder(t *testing.T) {
	m, err := Build(load(t, "alb-ingress"))
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Ingress default/portal")
	// Exact paths first, then Prefix paths longest first: /checkout, /rating, /order.
	if len(l.Rules) != 3 || !l.Rules[0].Exact || l.Rules[1].Paths[0] != "/rating" || l.Rules[2].Paths[0] != "/order" ||
		l.Rules[0].Priority != 1 || l.Rules[2].Priority != 3 {
		t.Fatalf("rules %+v", l.Rules)
	}
	for path, want := range map[string]string{"/order": "order", "/order/42": "order", "/orders": "", "/rating": "rating", "/": "",
		"/checkout": "checkout", "/checkout/x": ""} {
		r := l.Match(path)
		got := ""
		if r != nil {
			got = r.Service
		}
		if got != want {
			t.Errorf("%s matched %q, want %q", path, got, want)
		}
	}
	if !only(t, m, "Ingress default/portal").Rules[0].Group.CrossZone || only(t, m, "Ingress default/zonal").Rules[0].Group.CrossZone {
		t.Error("cross-zone: on by default, off with the target group attribute")
	}
}

func TestEligibleKeepsToTheZoneAndFailsOpen(t *testing.T) {
	g := &TargetGroup{Targets: []Target{{Object: "a1", AZ: "a"}, {Object: "b1", AZ: "b"}}}
	healthy := map[string]bool{"a1": true, "b1": true}
	h := func(t Target) bool { return healthy[t.Object] }
	if got := g.Eligible("a", h); len(got) != 1 || got[0].Object != "a1" {
		t.Errorf("cross-zone off: %v", got)
	}
	healthy["a1"] = false
	if got := g.Eligible("a", h); len(got) != 1 || got[0].Object != "a1" {
		t.Errorf("no healthy target in the zone while others are healthy: the node fails open to its zone's, got %v", got)
	}
	if got := (&TargetGroup{Targets: g.Targets[1:]}).Eligible("a", h); len(got) != 0 {
		t.Errorf("no target registered in the zone while others are healthy: the node has none, got %v", got)
	}
	healthy["b1"] = false
	if got := g.Eligible("a", h); len(got) != 2 {
		t.Errorf("every target unhealthy: fail open to all, got %v", got)
	}
	g.CrossZone, healthy["b1"] = true, true
	if got := g.Eligible("a", h); len(got) != 1 || got[0].Object != "b1" {
		t.Errorf("cross-zone on: %v", got)
	}
}

func TestNLBRulesSpreadAndSNATOnlyWhenTheClientIsNotPreserved(t *testing.T) {
	m, err := Build(load(t, "nlb-ip"))
	if err != nil {
		t.Fatal(err)
	}
	snat := NLBRules(only(t, m, "Service default/web-ip"), AllHealthy)
	pres := NLBRules(only(t, m, "Service default/web-pip"), AllHealthy)
	if !strings.Contains(snat, "-j MARK --set-xmark 0x1/0xff") || strings.Contains(pres, "/0xff\n") {
		t.Error("only the group without client IP preservation marks flows for SNAT")
	}
	if !strings.Contains(snat, "-A LB-SNAT -m mark --mark 0x1/0xff -j SNAT --to-source 192.168.101.4") {
		t.Errorf("SNAT to the node's own address missing:\n%s", snat)
	}
}

func TestBadAnnotationsAndControllerChoice(t *testing.T) {
	top := load(t, "nlb-ip")
	s := top.Manifests.Services[len(top.Manifests.Services)-1]
	s.Annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] = "pod"
	if _, err := Build(top); err == nil || !strings.Contains(err.Error(), `"pod" is not instance or ip`) {
		t.Errorf("bad target type: %v", err)
	}
	s.Annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] = "ip"
	s.Annotations["service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval"] = "1"
	if _, err := Build(top); err == nil || !strings.Contains(err.Error(), "healthcheck-interval") {
		t.Errorf("interval out of range: %v", err)
	}
	delete(s.Annotations, "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval")
	class := "example.com/other"
	s.Spec.LoadBalancerClass = &class
	m, err := Build(top)
	if err != nil || len(m.Pending) != 1 || !strings.Contains(m.Pending[0].Reason, "stays pending") {
		t.Errorf("a class no controller owns stays pending: %v %+v", err, m.Pending)
	}
}

func TestIngressToAMissingServiceIsAnError(t *testing.T) {
	top := load(t, "alb-ingress")
	top.Manifests.Ingresses[0].Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "nope"
	if _, err := Build(top); err == nil || !strings.Contains(err.Error(), `backend Service "nope" does not exist`) {
		t.Errorf("got %v", err)
	}
}

func TestShortNamesFitTheRouterPortName(t *testing.T) {
	for _, n := range []string{ShortName(NLB, "default", "web"), ShortName(ALB, "default", "a-very-long-ingress-name")} {
		if len(spec.RouterPortName(n, 2)) > spec.MaxIfName {
			t.Errorf("%s makes a router port name over %d bytes", n, spec.MaxIfName)
		}
	}
}

func TestNLBResetsFlowsToUnhealthyTargetsUnlessItFailsOpen(t *testing.T) {
	m, err := Build(load(t, "nlb-ip"))
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Service default/web-ip")
	g := l.Listeners[0].Group
	if len(g.Targets) < 2 {
		t.Fatalf("need two targets, have %v", g.Targets)
	}
	bad := g.Targets[0]
	g.CrossZone = true // every node has healthy targets besides bad
	health := func(unhealthy map[string]bool) Health {
		return Health{
			Healthy:   func(_ *TargetGroup, t Target) bool { return !unhealthy[t.Object] },
			Unhealthy: func(_ *TargetGroup, t Target) bool { return unhealthy[t.Object] },
		}
	}
	reset := fmt.Sprintf("-A LB-UNHEALTHY -d %s/32 -p tcp -m tcp --dport %d -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL", bad.IP, bad.Port)
	one := NLBRules(l, health(map[string]bool{bad.Object: true}))
	if !strings.Contains(one, reset) || !strings.Contains(one, "-j REJECT --reject-with tcp-reset") {
		t.Errorf("no reset for the flows of unhealthy %s:\n%s", bad.Object, one)
	}
	if strings.Contains(one, "--to-destination "+bad.String()+"\n") {
		t.Errorf("unhealthy %s still gets new flows:\n%s", bad.Object, one)
	}
	everyone := map[string]bool{}
	for _, tg := range g.Targets {
		everyone[tg.Object] = true
	}
	if all := NLBRules(l, health(everyone)); strings.Contains(all, "-A LB-UNHEALTHY -d") {
		t.Errorf("every target unhealthy: the NLB fails open and resets nothing:\n%s", all)
	}
	if fresh := NLBRules(l, AllHealthy); strings.Contains(fresh, "-A LB-UNHEALTHY -d") {
		t.Errorf("a healthy NLB resets flows:\n%s", fresh)
	}
	// Cross-zone off: bad is the only target in its zone, whose node fails
	// open to it; its flows are kept and it still gets new ones.
	g.CrossZone = false
	zonal := NLBRules(l, health(map[string]bool{bad.Object: true}))
	if strings.Contains(zonal, "-A LB-UNHEALTHY -d") || !strings.Contains(zonal, "--to-destination "+bad.String()+"\n") {
		t.Errorf("cross-zone off, %s alone in its zone and unhealthy: its node fails open to it:\n%s", bad.Object, zonal)
	}
}

func TestNLBMarksPacketsByTheENITheyArrivedOn(t *testing.T) {
	m, err := Build(load(t, "nlb-ip"))
	if err != nil {
		t.Fatal(err)
	}
	rules := NLBRules(only(t, m, "Service default/web-ip"), AllHealthy)
	for i := 0; i < 3; i++ {
		want := fmt.Sprintf("-A PREROUTING -i eth%d ", i)
		mark := fmt.Sprintf("-j MARK --set-xmark 0x%x/0xf00", ArrivalMark(i))
		found := false
		for _, l := range strings.Split(rules, "\n") {
			found = found || (strings.HasPrefix(l, want) && strings.HasSuffix(l, mark))
		}
		if !found {
			t.Errorf("no arrival mark %s for eth%d:\n%s", mark, i, rules)
		}
	}
	if ArrivalMark(0)&0xff != 0 || ArrivalMark(2)&^ArrivalMask != 0 {
		t.Error("arrival marks overlap the SNAT marks' 0xff")
	}
}

// healthExcept is a health function where the named objects are unhealthy.
func healthExcept(sick ...string) func(*TargetGroup, Target) bool {
	return func(_ *TargetGroup, t Target) bool {
		for _, s := range sick {
			if t.Object == s {
				return false
			}
		}
		return true
	}
}

func azsOf(nodes []Node) string {
	var azs []string
	for _, n := range nodes {
		azs = append(azs, n.AZ)
	}
	return strings.Join(azs, " ")
}

func TestNLBDropsAnAZFromDNSWhenItHasNoHealthyTargetAndAnswersAllWhenNoneHas(t *testing.T) {
	m, err := Build(load(t, "nlb-instance"))
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Service default/web")
	if in, out := l.InDNS(healthExcept()); len(in) != 3 || len(out) != 0 {
		t.Errorf("all healthy: every node in DNS, got %s, out %v", azsOf(in), out)
	}
	in, out := l.InDNS(healthExcept("node71"))
	if azsOf(in) != "us-east-1a us-east-1c" || !strings.Contains(out["us-east-1b"], "has cross-zone off and no healthy target in us-east-1b") {
		t.Errorf("node71 (the only target in us-east-1b) unhealthy: got %s, out %v", azsOf(in), out)
	}
	if in, out := l.InDNS(healthExcept("node51", "node71", "node81")); len(in) != 3 || len(out) != 0 {
		t.Errorf("every target unhealthy: Route 53 answers all, got %s, out %v", azsOf(in), out)
	}
	l.Listeners[0].Group.CrossZone = true
	if in, _ := l.InDNS(healthExcept("node71")); len(in) != 3 {
		t.Errorf("cross-zone on: us-east-1b's node still has healthy targets elsewhere, got %s", azsOf(in))
	}
}

func TestALBDropsAnAZFromDNSOnlyForATargetGroupWithCrossZoneOff(t *testing.T) {
	m, err := Build(load(t, "internet-to-pod"))
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Ingress default/portal")
	var rating *TargetGroup
	for _, g := range l.Groups() {
		if strings.Contains(g.Name, "rating") {
			rating = g
		}
	}
	if rating == nil || !rating.CrossZone || len(l.Groups()) != 2 {
		t.Fatalf("want two groups, rating's with cross-zone on: %+v", l.Groups())
	}
	// rating has targets in us-east-1b and 1c only; with cross-zone on that
	// does not matter, and neither does a sick target.
	var ratingC string
	for _, tg := range rating.Targets {
		if tg.AZ == "us-east-1c" {
			ratingC = tg.Object
		}
	}
	if in, _ := l.InDNS(healthExcept(ratingC)); len(in) != 3 {
		t.Errorf("cross-zone on: every node stays in DNS, got %s", azsOf(in))
	}
	rating.CrossZone = false
	in, out := l.InDNS(healthExcept())
	if azsOf(in) != "us-east-1b us-east-1c" || !strings.Contains(out["us-east-1a"], "has cross-zone off and no healthy target in us-east-1a") {
		t.Errorf("cross-zone off, no rating target in us-east-1a: got %s, out %v", azsOf(in), out)
	}
	if in, _ := l.InDNS(healthExcept(ratingC)); azsOf(in) != "us-east-1b" {
		t.Errorf("cross-zone off, rating's us-east-1c target (%s) unhealthy: got %s", ratingC, azsOf(in))
	}
}

func TestALBAnswersEveryNodeWhenEveryAZWouldLeaveDNS(t *testing.T) {
	m, err := Build(load(t, "internet-to-pod"))
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Ingress default/portal")
	var sick []string
	for _, g := range l.Groups() {
		g.CrossZone = false
		for _, tg := range g.Targets {
			sick = append(sick, tg.Object)
		}
	}
	in, out := l.InDNS(healthExcept(sick...))
	if len(in) != len(l.Nodes) || len(out) != 0 {
		t.Errorf("every target unhealthy, cross-zone off: the ALB fails open and every node is answered, got %s, out %v", azsOf(in), out)
	}
}

// TestAttributeAnnotationsRefuseWhatTheELBv2APIRefuses: issue 11 saw
// target-group-attributes "garbage===" accepted.
func TestAttributeAnnotationsRefuseWhatTheELBv2APIRefuses(t *testing.T) {
	const anno = "alb.ingress.kubernetes.io/target-group-attributes"
	for _, c := range []struct{ value, want string }{
		{"garbage===", `"garbage===" is not key=value`},
		{"stickiness.enabled", `"stickiness.enabled" is not key=value`},
		{"load_balancing.cross_zone.enabled=", `is not key=value`},
		{"=true", `"=true" is not key=value`},
		{"no_such.attribute=1", `"no_such.attribute" is not a target group attribute`},
		{"stickiness.enabled=true,stickiness.enabled=false", "stickiness.enabled is given twice"},
	} {
		top := load(t, "alb-ingress")
		in := top.Manifests.Ingresses[len(top.Manifests.Ingresses)-1]
		in.Annotations[anno] = c.value
		where := fmt.Sprintf("alb-ingress.yaml:%d: Ingress default/zonal: annotation %s", top.ManifestLine("Ingress", in.Namespace, in.Name), anno)
		_, err := Build(top)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), where) {
			t.Errorf("%s: %q: got %v, want %q at %q", anno, c.value, err, c.want, where)
		}
	}
	top := load(t, "alb-ingress")
	top.Manifests.Ingresses[len(top.Manifests.Ingresses)-1].Annotations[anno] = " stickiness.enabled = false , load_balancing.cross_zone.enabled=false"
	if _, err := Build(top); err != nil {
		t.Errorf("two known attributes with spaces: %v", err)
	}
}

// TestALBNeedsSubnetsInTwoAZs: CreateLoadBalancer refuses a single-AZ ALB.
func TestALBNeedsSubnetsInTwoAZs(t *testing.T) {
	top := load(t, "alb-ingress")
	for i := 1; i < len(top.AZs); i++ {
		for j := range top.AZs[i].Subnets {
			top.AZs[i].Subnets[j].Role = ""
		}
	}
	_, err := Build(top)
	if err == nil || !strings.Contains(err.Error(), "an ALB needs subnets in at least two AZs; only us-east-1a") ||
		!strings.Contains(err.Error(), "alb-ingress.yaml:") {
		t.Errorf("single-AZ ALB: got %v", err)
	}
}

// TestNodeInAZRefusesAnAZWithoutANode: a walk's az no longer falls back to
// the first node (issue 11: az: mars-1a passed).
func TestNodeInAZRefusesAnAZWithoutANode(t *testing.T) {
	m, err := Build(load(t, "alb-ingress"))
	if err != nil {
		t.Fatal(err)
	}
	l := m.LBs[0]
	if n, err := l.NodeInAZ("us-east-1b"); err != nil || n.AZ != "us-east-1b" {
		t.Errorf("us-east-1b: %+v %v", n, err)
	}
	if n, err := l.NodeInAZ(""); err != nil || n.AZ != l.Nodes[0].AZ {
		t.Errorf("no AZ: %+v %v", n, err)
	}
	if _, err := l.NodeInAZ("mars-1a"); err == nil || !strings.Contains(err.Error(), "no node in AZ mars-1a") {
		t.Errorf("mars-1a: got %v", err)
	}
}

// TestElasticIPsRunOutWithAnError: load balancer nodes take Elastic IPs
// from 203.0.113.201-254; past that the build fails instead of wrapping
// into the topology's own public range.
func TestElasticIPsRunOutWithAnError(t *testing.T) {
	b := &builder{t: &spec.Topology{}}
	var last netip.Addr
	for i := 0; i < 54; i++ {
		last = b.nextPublic()
	}
	if last.String() != "203.0.113.254" {
		t.Errorf("the 54th Elastic IP is %s, want 203.0.113.254", last)
	}
	if a := b.nextPublic(); a.IsValid() {
		t.Errorf("a 55th Elastic IP %s was handed out", a)
	}
}
