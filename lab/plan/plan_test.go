package plan

import (
	"encoding/json"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func podNetworking(t *testing.T) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/pod-networking.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func TestSameTopologyRendersTheSamePlan(t *testing.T) {
	a, _ := json.Marshal(Build(podNetworking(t), "x"))
	b, _ := json.Marshal(Build(podNetworking(t), "x"))
	if string(a) != string(b) {
		t.Fatal("two builds of one topology differ")
	}
	c, _ := json.Marshal(Build(podNetworking(t), "y"))
	if string(a) == string(c) {
		t.Fatal("lab name does not reach the namespace names")
	}
}

// rulesByTable keeps the -A lines of each table, in order.
func rulesByTable(dump string) map[string][]string {
	out := map[string][]string{}
	table := ""
	for _, l := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A "):
			out[table] = append(out[table], l)
		}
	}
	return out
}

func TestVPCCNIv123RulesMatchTheReferenceIptablesSave(t *testing.T) {
	want, err := os.ReadFile("testdata/vpc-cni-iptables-save.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := rulesByTable(VPCCNIRules(netip.MustParsePrefix("10.0.0.0/16"), netip.MustParseAddr("10.0.0.20"), "eth0", "v1.23"))
	ref := rulesByTable(string(want))
	for _, table := range []string{"nat", "mangle"} {
		if strings.Join(got[table], "\n") != strings.Join(ref[table], "\n") {
			t.Errorf("%s differs\n got:\n%s\nwant:\n%s", table, strings.Join(got[table], "\n"), strings.Join(ref[table], "\n"))
		}
	}
}

func hasRule(n *Namespace, r Rule) bool {
	for _, x := range n.Rules {
		if x == r {
			return true
		}
	}
	return false
}

func TestSecondaryENIPodGetsRule1536AndItsENITable(t *testing.T) {
	p := Build(podNetworking(t), "x")
	node := p.NS("node51")
	pod61 := netip.MustParsePrefix("192.168.1.61/32")
	if !hasRule(node, Rule{Priority: 1536, Src: pod61, Table: 2}) {
		t.Errorf("no 1536 rule for pod61 on eth1: %+v", node.Rules)
	}
	if !hasRule(node, Rule{Priority: 512, Dst: pod61, Table: 254}) {
		t.Errorf("no 512 rule for pod61")
	}
	var table2 []Route
	deleted := false
	for _, r := range node.Routes {
		if r.Table == 2 {
			table2 = append(table2, r)
		}
		if r.Delete && r.Dst.String() == "192.168.1.0/24" && r.Dev == "eth1" {
			deleted = true
		}
	}
	if len(table2) != 2 || !table2[0].Link || table2[1].Gw.String() != "192.168.1.1" {
		t.Errorf("table 2 must hold exactly the gateway link route and the default: %+v", table2)
	}
	if !deleted {
		t.Error("eth1's subnet route is not removed from main")
	}
}

func TestPrimaryENIPodHasNoFromRule(t *testing.T) {
	p := Build(podNetworking(t), "x")
	for _, r := range p.NS("node51").Rules {
		if r.Src == netip.MustParsePrefix("192.168.1.51/32") {
			t.Errorf("pod51 is on eth0 and must route by main, but has %+v", r)
		}
	}
}

func TestPodGetsStaticARPToItsHostVethMAC(t *testing.T) {
	top := podNetworking(t)
	p := Build(top, "x")
	pod := p.NS("pod81")
	want := spec.HostVethMAC("default", "pod81").String()
	if len(pod.Neighs) != 1 || pod.Neighs[0].MAC.String() != want || pod.Neighs[0].IP != spec.PodGateway {
		t.Errorf("pod81 neighbours %+v, want 169.254.1.1 at %s", pod.Neighs, want)
	}
	var found bool
	for _, v := range p.Veths {
		if v.B.Name == spec.HostVethName("default", "pod81") && v.B.MAC.String() == want && v.B.NS == "lc.x.node81" {
			found = true
		}
	}
	if !found {
		t.Error("pod81's host veth does not carry the MAC of the static ARP entry")
	}
}

func TestRouterSendsNoRedirectsAndPinsENIMACs(t *testing.T) {
	p := Build(podNetworking(t), "x")
	r := p.Namespaces[0]
	if r.Role != RoleRouter {
		t.Fatalf("first namespace is %s, want the router", r.Role)
	}
	keys := map[string]string{}
	for _, s := range r.Sysctls {
		keys[s.Key] = s.Value
	}
	if keys["net/ipv4/conf/all/send_redirects"] != "0" || keys["net/ipv4/ip_forward"] != "1" {
		t.Errorf("router sysctls %v", keys)
	}
	fdb := 0
	for _, b := range r.Bridges {
		fdb += len(b.FDB)
	}
	if fdb != 6 { // node51 x2, node71, node81 x2, client
		t.Errorf("%d static FDB entries, want one per ENI (6)", fdb)
	}
}
