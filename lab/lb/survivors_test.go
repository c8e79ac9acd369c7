package lb

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// An instance-target NLB with preserve_client_ip.enabled=false must SNAT
// every flow to the NLB node's own address (AWS docs, "Client IP
// preservation", elbv2 target group attributes): the documented fix for the
// hairpin of a pod calling its own Service's NLB.
func TestInstanceTargetsWithPreservationOffAreSNATedToTheNLBNode(t *testing.T) {
	top := load(t, "nlb-instance")
	var found bool
	for _, s := range top.Manifests.Services {
		if s.Name == "web" {
			found = true
			s.Annotations["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"] = "preserve_client_ip.enabled=false"
		}
	}
	if !found {
		t.Fatal("nlb-instance has no Service web")
	}
	m, err := Build(top)
	if err != nil {
		t.Fatal(err)
	}
	l := only(t, m, "Service default/web")
	g := l.Listeners[0].Group
	if g.TargetType != TargetInstance || g.PreserveClientIP {
		t.Fatalf("instance targets with preserve_client_ip.enabled=false: type %s preserve %v", g.TargetType, g.PreserveClientIP)
	}
	rules := NLBRules(l, AllHealthy)
	for _, n := range l.Nodes {
		chain := ChainName(n.Index, "TCP", 80)
		mark := fmt.Sprintf("-A %s -j MARK --set-xmark 0x%x/0xff", chain, n.Index+1)
		snat := fmt.Sprintf("-A LB-SNAT -m mark --mark 0x%x/0xff -j SNAT --to-source %s", n.Index+1, n.IP)
		if !strings.Contains(rules, mark+"\n") || !strings.Contains(rules, snat+"\n") {
			t.Errorf("node %s: want %q and %q in:\n%s", n.AZ, mark, snat, rules)
		}
	}
	// And the default (no attribute) keeps the client: no flow is marked.
	m, err = Build(load(t, "nlb-instance"))
	if err != nil {
		t.Fatal(err)
	}
	if r := NLBRules(only(t, m, "Service default/web"), AllHealthy); strings.Contains(r, "-j MARK --set-xmark 0x1/0xff") {
		t.Errorf("instance targets preserve the client by default, yet flows are marked for SNAT:\n%s", r)
	}
}

var dnatRule = regexp.MustCompile(`^-A (\S+) .*?(?:--probability (\S+) )?-j DNAT --to-destination (\S+)$`)

// shares reads a chain's DNAT rules in order and returns the share of new
// flows each target gets, as iptables evaluates them: a rule with
// probability p takes p of what the rules before it left.
func shares(t *testing.T, rules, chain string) (map[string]float64, []string) {
	t.Helper()
	got := map[string]float64{}
	var order []string
	left := 1.0
	for _, line := range strings.Split(rules, "\n") {
		m := dnatRule.FindStringSubmatch(line)
		if m == nil || m[1] != chain {
			continue
		}
		p := 1.0
		if m[2] != "" {
			var err error
			if p, err = strconv.ParseFloat(m[2], 64); err != nil {
				t.Fatalf("%s: probability %q: %v", line, m[2], err)
			}
		}
		got[m[3]] += left * p
		order = append(order, m[3])
		left -= left * p
	}
	if left > 1e-9 {
		t.Errorf("%s: %.4f of new flows fall through every DNAT rule", chain, left)
	}
	return got, order
}

// With n eligible targets the chain must give each 1/n of the new flows:
// probabilities 1/n, 1/(n-1), ..., 1/2, then an unconditional rule
// (kube-proxy's technique). Every shipped NLB has at most two targets per
// node, where 1/2-then-rest and 1/n-per-rule look the same.
func TestNLBSpreadsEvenlyOverThreeAndFourTargets(t *testing.T) {
	for _, n := range []int{3, 4} {
		g := &TargetGroup{Name: "g", TargetType: TargetIP, PreserveClientIP: true, Port: 80}
		for i := 0; i < n; i++ {
			g.Targets = append(g.Targets, Target{Object: fmt.Sprintf("pod%d", i), IP: netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)}),
				Port: 80, AZ: "us-east-1a"})
		}
		l := &LoadBalancer{Name: "nlb-x", Kind: NLB, Nodes: []Node{{AZ: "us-east-1a", IP: netip.MustParseAddr("192.168.101.4")}},
			Listeners: []Listener{{Port: 80, Protocol: "TCP", Group: g}}}
		rules := NLBRules(l, AllHealthy)
		got, order := shares(t, rules, ChainName(0, "TCP", 80))
		if len(order) != n {
			t.Fatalf("%d targets: %d DNAT rules:\n%s", n, len(order), rules)
		}
		for _, tg := range g.Targets {
			if math.Abs(got[tg.String()]-1/float64(n)) > 1e-6 {
				t.Errorf("%d targets: %s gets %.4f of new flows, want %.4f:\n%s", n, tg, got[tg.String()], 1/float64(n), rules)
			}
		}
	}
}
