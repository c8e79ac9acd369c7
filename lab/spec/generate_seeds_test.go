package spec_test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// FixedSeeds are the generated topologies the unit tests and the e2e suite
// run; together they hold every feature TestFixedSeedsCoverEveryFeature lists.
var FixedSeeds = spec.GeneratedSeeds

// deriveAll derives every walk of a topology for every choice a run can
// make (each endpoint of a Service, each target of a load balancer), as a
// run derives it from what it captured.
func deriveAll(t *spec.Topology) error {
	for _, w := range t.Walks {
		if err := deriveWalk(t, w); err != nil {
			return fmt.Errorf("walk %s: %w", w.Name, err)
		}
	}
	return nil
}

func deriveWalk(t *spec.Topology, w spec.Walk) error {
	switch {
	case w.Kind == spec.WalkState:
		return nil
	case w.LoadBalancer != "":
		_, l, _, li, err := walk.LBOf(t, w)
		if err != nil {
			return err
		}
		if w.Kind != spec.WalkFlow {
			return nil
		}
		if _, err := walk.Derive(t, w, 40000, ""); err != nil {
			return err
		}
		g := li.Group
		if l.Kind == lb.ALB {
			g = nil
			if r := l.Match(w.Path); r != nil {
				g = r.Group
			}
		}
		if g == nil {
			return nil
		}
		for _, tg := range g.Targets {
			if _, err := walk.Derive(t, w, 40000, "", walk.Picks{Target: tg.Object}); err != nil {
				return fmt.Errorf("target %s: %w", tg.Object, err)
			}
		}
		return nil
	case w.Service != "" || w.Kind == spec.WalkDNS:
		svc := walk.ServiceOf(t, w)
		if svc == nil {
			return fmt.Errorf("no Service port for the walk")
		}
		if w.Kind != spec.WalkFlow && w.Kind != spec.WalkDNS {
			return nil
		}
		eps := svc.Endpoints(t)
		if len(eps) == 0 {
			return fmt.Errorf("Service %s has no endpoints", svc.Name)
		}
		for _, pod := range eps {
			if _, err := walk.Derive(t, w, 40000, pod); err != nil {
				return fmt.Errorf("endpoint %s: %w", pod, err)
			}
		}
		return nil
	default:
		_, err := walk.Derive(t, w, 40000, "")
		return err
	}
}

// checkSeed is everything up does before touching the kernel, and every
// walk's derivation.
func checkSeed(seed int64) (*spec.Topology, []byte, error) {
	t, data, err := spec.LoadRandom(seed)
	if err != nil {
		return nil, data, err
	}
	if _, err := lb.Build(t); err != nil {
		return t, data, fmt.Errorf("lb.Build: %w", err)
	}
	if p := plan.Build(t, "h4"); len(p.Namespaces) == 0 {
		return t, data, fmt.Errorf("plan.Build: no namespaces")
	}
	return t, data, deriveAll(t)
}

func TestEveryFixedSeedLoadsBuildsAndDerivesEveryWalk(t *testing.T) {
	for _, seed := range FixedSeeds {
		if _, data, err := checkSeed(seed); err != nil {
			t.Errorf("seed %d: %v\n%s", seed, err, data)
		}
	}
}

func TestRandomIsDeterministic(t *testing.T) {
	for _, seed := range append(FixedSeeds, 977, -5) {
		if a, b := spec.Random(seed), spec.Random(seed); !bytes.Equal(a, b) {
			t.Errorf("seed %d: two calls gave different YAML", seed)
		}
	}
	if bytes.Equal(spec.Random(1), spec.Random(2)) {
		t.Error("seeds 1 and 2 gave the same YAML")
	}
}

// TestManyRandomSeedsLoad is a small soak: any seed must give a topology
// the lab accepts and can derive; a seed that does not is a generator or
// model bug, printed with its YAML.
func TestManyRandomSeedsLoad(t *testing.T) {
	n := int64(300)
	if testing.Short() {
		n = 50
	}
	for seed := int64(1000); seed < 1000+n; seed++ {
		if _, data, err := checkSeed(seed); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, data)
		}
	}
}

// features lists what a topology holds, read from the loaded topology and
// its load balancers, not from the generator's own choices.
func features(t *spec.Topology) map[string]bool {
	f := map[string]bool{}
	c := t.VPC.CIDR
	switch {
	case c.Addr().As4()[0] == 10:
		f["vpc 10/8"] = true
	case c.Addr().As4()[0] == 172:
		f["vpc 172.16/12"] = true
	default:
		f["vpc 192.168/16"] = true
	}
	f[fmt.Sprintf("vpc /%d", c.Bits())] = true
	f[fmt.Sprintf("%d AZs", len(t.AZs))] = true
	if t.VPC.PrefixDelegation {
		f["prefix delegation"] = true
	}
	for _, n := range t.Nodes {
		f[fmt.Sprintf("node with %d ENIs", len(n.ENIs))] = true
		for j, e := range n.ENIs {
			if *e.Index != j {
				f["device index gap"] = true
			}
			if e.Subnet != n.ENIs[0].Subnet {
				f["ENI outside the primary's subnet"] = true
			}
			if len(e.Prefixes) == 0 && t.VPC.PrefixDelegation {
				f["prefix delegation on some nodes only"] = true
			}
		}
	}
	roles := map[string]bool{}
	for _, s := range t.Subnets() {
		if s.Role != "" {
			roles[s.Name] = true
		}
	}
	for _, p := range t.Pods {
		if p.ENI > 0 {
			f["pod on a secondary ENI"] = true
		}
		if roles[t.Node(p.Node).ENI(p.ENI).Subnet] {
			f["pods in a load balancer subnet"] = true
		}
		if strings.HasPrefix(p.Manifest, "Deployment default/") {
			f["Deployment pods"] = true
		}
	}
	if len(t.Hosts) > 0 {
		f["host"] = true
	}
	if t.Internet != nil && len(t.Internet.Hosts) > 0 {
		f["internet host"] = true
	}
	if len(t.NATGateways) > 0 {
		f["NAT gateway"] = true
	}
	m, err := lb.Build(t)
	if err != nil {
		return f
	}
	for _, l := range m.LBs {
		f[l.Kind+" "+l.Scheme] = true
		for _, li := range l.Listeners {
			if l.Kind == lb.NLB {
				f["NLB "+li.Protocol] = true
			}
		}
		for _, g := range l.Groups() {
			switch {
			case l.Kind == lb.ALB && !g.CrossZone:
				f["ALB cross-zone off"] = true
			case l.Kind == lb.ALB:
				f["ALB cross-zone on"] = true
			case g.TargetType == lb.TargetIP && g.PreserveClientIP:
				f["NLB ip, client IP preserved"] = true
			case g.TargetType == lb.TargetIP:
				f["NLB ip, client IP not preserved"] = true
			}
		}
		for _, r := range l.Rules {
			if r.Exact {
				f["ALB Exact path"] = true
			} else {
				f["ALB Prefix path"] = true
			}
		}
	}
	for _, s := range t.Manifests.Services {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "instance" {
			f["NLB instance "+string(s.Spec.ExternalTrafficPolicy)] = true
		}
	}
	for _, in := range t.Manifests.Ingresses {
		if in.Spec.DefaultBackend != nil {
			f["ALB default backend"] = true
		}
	}
	for _, w := range t.Walks {
		f["walk "+walkKind(t, w)] = true
	}
	return f
}

// walkKind names the path kind of a walk from its ends' roles.
func walkKind(t *spec.Topology, w spec.Walk) string {
	from, to := t.Pod(w.From), t.Pod(w.To)
	switch {
	case w.Kind != spec.WalkFlow:
		return w.Kind
	case w.LoadBalancer != "" && t.InternetHost(w.From) != nil:
		return "internet to load balancer"
	case w.LoadBalancer != "" && w.Path != "":
		return "ALB"
	case w.LoadBalancer != "":
		return "NLB"
	case w.Via != "" && w.Expect == "drop":
		return "NodePort dropped (Local)"
	case w.Via != "":
		return "NodePort"
	case w.Service != "" && w.From != "" && t.Pod(w.From).Labels["app"] == strings.TrimPrefix(w.Service, "default/"):
		return "ClusterIP to itself"
	case w.Service != "":
		return "ClusterIP " + w.Protocol
	case t.InternetHost(w.To) != nil && w.Expect == "drop":
		return "egress without an Elastic IP"
	case t.InternetHost(w.To) != nil && from != nil &&
		t.DefaultRoute(t.Node(from.Node).ENI(from.ENI).Subnet).Kind == spec.EgressNAT:
		c := t.NodeVPCCNI(from.Node)
		switch {
		case c.ExternalSNAT:
			return "egress through a NAT gateway, external SNAT"
		case len(c.ExcludeSNATCIDRs) > 0:
			return "egress through a NAT gateway, SNAT excluded"
		}
		return "egress through a NAT gateway"
	case t.InternetHost(w.To) != nil:
		return "egress"
	case from != nil && to != nil && from.Node == to.Node:
		return "pod to pod, same node"
	case from != nil && to != nil && to.ENI > 0:
		return "pod to pod on a secondary ENI"
	case from != nil && to != nil:
		return "pod to pod, across nodes"
	case from != nil:
		return "pod to host"
	}
	return "other"
}

func TestFixedSeedsCoverEveryFeature(t *testing.T) {
	want := []string{
		"vpc 10/8", "vpc 172.16/12", "vpc 192.168/16", "vpc /16", "vpc /18", "vpc /20",
		"1 AZs", "2 AZs", "3 AZs", "4 AZs",
		"node with 1 ENIs", "node with 2 ENIs", "node with 3 ENIs", "node with 4 ENIs",
		"device index gap", "ENI outside the primary's subnet", "pod on a secondary ENI",
		"prefix delegation", "prefix delegation on some nodes only", "pods in a load balancer subnet", "Deployment pods",
		"host", "internet host",
		"nlb internal", "nlb internet-facing", "NLB TCP", "NLB UDP",
		"NLB instance Cluster", "NLB instance Local", "NLB ip, client IP preserved", "NLB ip, client IP not preserved",
		"alb internal", "alb internet-facing", "ALB cross-zone on", "ALB cross-zone off",
		"ALB Exact path", "ALB Prefix path", "ALB default backend",
		"walk state", "walk pod to pod, same node", "walk pod to pod, across nodes", "walk pod to pod on a secondary ENI",
		"walk pod to host", "walk ClusterIP tcp", "walk ClusterIP udp", "walk ClusterIP to itself", "walk dns", "walk churn",
		"walk NodePort", "walk NodePort dropped (Local)", "walk NLB", "walk ALB", "walk internet to load balancer",
		"walk egress", "walk egress without an Elastic IP",
		"NAT gateway", "walk egress through a NAT gateway", "walk egress through a NAT gateway, external SNAT",
		"walk egress through a NAT gateway, SNAT excluded",
	}
	have := map[string][]int64{}
	for _, seed := range FixedSeeds {
		top, _, err := spec.LoadRandom(seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for f := range features(top) {
			have[f] = append(have[f], seed)
		}
	}
	for _, f := range want {
		if len(have[f]) == 0 {
			t.Errorf("no fixed seed has %q", f)
		}
	}
	if t.Failed() || testing.Verbose() {
		var names []string
		for f := range have {
			names = append(names, f)
		}
		sort.Strings(names)
		for _, f := range names {
			t.Logf("%-45s %v", f, have[f])
		}
	}
}

// TestSomeGeneratedSeedsHaveANATGatewayAndValidate: a share of seeds put
// nodes in private subnets behind a NAT gateway (walks D3); each such
// topology validates, its private subnets route to the NAT gateway, their
// nodes have no Elastic IP, and every walk to the internet from behind it
// derives through the NAT gateway to the internet host, seeing its
// Elastic IP, with aws-node's SNAT as the node sets it.
func TestSomeGeneratedSeedsHaveANATGatewayAndValidate(t *testing.T) {
	const n = 200
	withNAT, natWalks := 0, 0
	for seed := int64(1); seed <= n; seed++ {
		top, data, err := checkSeed(seed)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, data)
		}
		if len(top.NATGateways) == 0 {
			continue
		}
		withNAT++
		nat := top.NATGateways[0]
		if e := top.DefaultRoute(nat.Subnet); e.Kind != spec.EgressIGW {
			t.Errorf("seed %d: NAT gateway %s's subnet %s does not route to the internet gateway", seed, nat.Name, nat.Subnet)
		}
		private := 0
		for _, nd := range top.Nodes {
			if top.DefaultRoute(nd.ENIs[0].Subnet).Kind != spec.EgressNAT {
				continue
			}
			private++
			if pub, ok := top.PublicIPOf(nd.ENIs[0].IP); ok {
				t.Errorf("seed %d: node %s behind the NAT gateway has the Elastic IP %s", seed, nd.Name, pub)
			}
		}
		if private == 0 {
			t.Errorf("seed %d: a NAT gateway, but no node routes to it\n%s", seed, data)
		}
		for _, w := range top.Walks {
			if !strings.HasPrefix(walkKind(top, w), "egress through a NAT gateway") {
				continue
			}
			natWalks++
			x, err := walk.Derive(top, w, 40000, "")
			if err != nil {
				t.Fatalf("seed %d walk %s: %v", seed, w.Name, err)
			}
			if err := throughNAT(top, x); err != nil {
				t.Errorf("seed %d walk %s: %v", seed, w.Name, err)
			}
		}
	}
	t.Logf("%d of %d seeds have a NAT gateway, with %d walks through it", withNAT, n, natWalks)
	if withNAT < n/5 || withNAT > n*3/5 {
		t.Errorf("%d of %d seeds have a NAT gateway; want a share between a fifth and three fifths", withNAT, n)
	}
	if natWalks < withNAT/2 {
		t.Errorf("only %d walks through the %d NAT gateways", natWalks, withNAT)
	}
}

// throughNAT checks a derived egress walk: the packet reaches the NAT
// gateway with the node's primary IP (or the pod's, when aws-node does not
// SNAT it) and the internet host sees the NAT gateway's Elastic IP.
func throughNAT(top *spec.Topology, x *walk.Expectation) error {
	nat := top.NATGateways[0]
	pod := top.Pod(x.Walk.From)
	want := pod.IP
	if top.NodeSNATs(pod.Node, x.To.IP) {
		want = top.Node(pod.Node).ENI(0).IP
	}
	var atNAT, atHost bool
	for _, h := range x.Hops {
		if h.Leg != walk.Request {
			continue
		}
		if h.Point == (walk.Point{Object: nat.Name, Iface: "eth0"}) && h.Dir == walk.In {
			atNAT = true
			if h.Src != want {
				return fmt.Errorf("the NAT gateway receives it from %s, want %s", h.Src, want)
			}
		}
		if h.Point.Object == x.Walk.To && h.Dir == walk.In {
			atHost = true
			if h.Src != nat.PublicIP {
				return fmt.Errorf("%s sees %s, want the NAT gateway's Elastic IP %s", x.Walk.To, h.Src, nat.PublicIP)
			}
		}
	}
	if !atNAT || !atHost {
		return fmt.Errorf("reaches the NAT gateway: %v, the internet host: %v", atNAT, atHost)
	}
	return nil
}
