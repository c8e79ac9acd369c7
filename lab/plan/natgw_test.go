package plan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func privateSubnets(t *testing.T) *Plan {
	t.Helper()
	top, err := spec.Load("../../topologies/private-subnets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return Build(top, "t")
}

func TestRouterRoutesEachSubnetByItsRouteTable(t *testing.T) {
	p := privateSubnets(t)
	r := p.NS(spec.RouterName)
	rules := map[string]int{}
	for _, ru := range r.Rules {
		rules[ru.Src.String()] = ru.Table
	}
	// public -> 200, private-a -> 201, isolated -> 202 (file order).
	for src, table := range map[string]int{"192.168.0.0/24": 200, "192.168.1.0/24": 201, "192.168.3.0/24": 202} {
		if rules[src] != table {
			t.Errorf("rule from %s looks up %d, want %d (rules %v)", src, rules[src], table, rules)
		}
	}
	defaults := map[int]Route{}
	local := map[int]int{}
	for _, rt := range r.Routes {
		if rt.Dst.Bits() == 0 && rt.Table != 0 {
			defaults[rt.Table] = rt
		} else if rt.Table >= RouteTableBase {
			local[rt.Table]++
		}
	}
	if d := defaults[200]; d.Gw.String() != "169.254.255.2" || d.Dev != RouterGatewayIf {
		t.Errorf("public table default %+v, want via the internet gateway", d)
	}
	if d := defaults[201]; d.Gw.String() != "192.168.0.10" || d.Dev != "br-public-a" {
		t.Errorf("private table default %+v, want via nat-a on the public subnet's bridge", d)
	}
	if d := defaults[202]; !d.Unreachable || d.Gw.IsValid() {
		t.Errorf("isolated table default %+v, want unreachable", d)
	}
	for table := 200; table <= 202; table++ {
		if local[table] != 3 {
			t.Errorf("table %d holds %d local subnet routes, want the VPC's 3", table, local[table])
		}
	}
}

func TestNATGatewayHasItsOwnNamespaceSNATAndIdleTimeout(t *testing.T) {
	p := privateSubnets(t)
	ns := p.NS("nat-a")
	if ns == nil || ns.Role != RoleNATGateway {
		t.Fatalf("no NAT gateway namespace: %+v", ns)
	}
	if !strings.Contains(ns.Iptables, "-s 192.168.0.0/16 ! -d 192.168.0.0/16") || !strings.Contains(ns.Iptables, "--to-source 192.168.0.10") {
		t.Errorf("NAT gateway rules:\n%s", ns.Iptables)
	}
	timeout := false
	for _, s := range ns.Sysctls {
		timeout = timeout || (s.Key == "net/netfilter/nf_conntrack_tcp_timeout_established" && s.Value == "350" && s.AfterIptables)
	}
	if !timeout {
		t.Errorf("the NAT gateway's 350 s idle timeout is missing (a late sysctl): %+v", ns.Sysctls)
	}
	igw := p.NS(spec.GatewayName)
	if !strings.Contains(igw.Iptables, "-d 203.0.113.10/32") || !strings.Contains(igw.Iptables, "-s 192.168.0.10/32") {
		t.Errorf("the internet gateway must map nat-a's private IP to its Elastic IP:\n%s", igw.Iptables)
	}
	attached := false
	for _, v := range p.Veths {
		attached = attached || (v.A.NS == ns.Name && v.B.Master == "br-public-a")
	}
	if !attached {
		t.Error("nat-a's ENI must sit on the public subnet's bridge")
	}
}

func TestNodeSNATFollowsExternalSNATAndExcludeCIDRs(t *testing.T) {
	p := privateSubnets(t)
	if !strings.Contains(p.NS("node11").Iptables, "--to-source 192.168.1.11") {
		t.Error("node11 (defaults) must SNAT to its primary IP")
	}
	n21 := p.NS("node21").Iptables
	if strings.Contains(n21, "AWS-SNAT-CHAIN-0") || strings.Contains(n21, "AWS-CONNMARK-CHAIN-0") {
		t.Errorf("node21 has external SNAT: no SNAT or nat connmark chain:\n%s", n21)
	}
	if !strings.Contains(n21, `--comment "AWS, primary ENI"`) {
		t.Error("node21 keeps the mangle rules (NodePort support)")
	}
	n31 := p.NS("node31").Iptables
	for _, want := range []string{
		`-A AWS-SNAT-CHAIN-0 -d 198.51.100.0/24 -m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN`,
		`-A AWS-CONNMARK-CHAIN-0 -d 198.51.100.0/24 -m comment`,
	} {
		if !strings.Contains(n31, want) {
			t.Errorf("node31 lacks %q", want)
		}
	}
}

func TestExcludeCIDRsReadInReverseOrderAndDefaultHasNoDst(t *testing.T) {
	c := spec.VPCCNI{ExcludeSNATCIDRs: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("0.0.0.0/0")}}
	got := VPCCNIRulesWith(netip.MustParsePrefix("10.0.0.0/16"), netip.MustParseAddr("10.0.0.20"), "eth0", c)
	var snat []string
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "-A AWS-SNAT-CHAIN-0") {
			snat = append(snat, l)
		}
	}
	if len(snat) != 4 || !strings.HasPrefix(snat[0], `-A AWS-SNAT-CHAIN-0 -m comment --comment "AWS SNAT CHAIN EXCLUSION"`) ||
		!strings.Contains(snat[1], "-d 10.1.0.0/16") || !strings.Contains(snat[2], "-d 10.0.0.0/16") {
		t.Errorf("SNAT chain:\n%s", strings.Join(snat, "\n"))
	}
}
