package kubeproxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"context"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"
)

// nftObjectOrder is upstream's objectOrder (helpers_test.go): higher sorts
// earlier.
var nftObjectOrder = map[string]int{"table": 10, "chain": 9, "rule": 8, "set": 7, "map": 6, "element": 5}

// sortNFTDump is upstream's sortNFTablesTransaction
// (kubernetes/kubernetes pkg/proxy/nftables/helpers_test.go): drop blank
// and '#' lines, then stable-sort by object type, then object name; rules
// of one chain keep their order, everything else sorts by whole line.
func sortNFTDump(tx string) string {
	var lines []string
	for _, l := range strings.Split(tx, "\n") {
		if l != "" && l[0] != '#' {
			lines = append(lines, l)
		}
	}
	slices.SortStableFunc(lines, func(li, lj string) int {
		wi, wj := strings.Split(li, " "), strings.Split(lj, " ")
		if len(wi) < 5 || len(wj) < 5 {
			return 0
		}
		if wi[1] != wj[1] {
			return nftObjectOrder[wj[1]] - nftObjectOrder[wi[1]]
		}
		if wi[4] != wj[4] {
			return strings.Compare(wi[4], wj[4])
		}
		if wi[1] == "rule" {
			return 0
		}
		return strings.Compare(li, lj)
	})
	return strings.Join(lines, "\n")
}

// nftGoldenConfig is upstream's NewFakeProxier for IPv4: the iptables
// golden environment, NodePorts on 192.168.0.2/32 only, Service CIDR
// 172.30.0.0/16.
func nftGoldenConfig() NFTConfig {
	c := NFTConfig{Config: goldenConfig(), ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}}
	c.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix("192.168.0.2/32"), netip.MustParsePrefix("2001:db8::1/128")}
	return c
}

// baseRulesNFT is upstream's baseRules: the dump of a sync with no Services.
func baseRulesNFT(t *testing.T) string {
	t.Helper()
	golden := readTestdata(t, "nftables-overall.txt")
	base, _, ok := strings.Cut(golden, "# svc1\n")
	if !ok {
		t.Fatal("testdata/nftables-overall.txt: no '# svc1' line")
	}
	return base
}

func assertNFTDumpEqual(t *testing.T, want, got string) {
	t.Helper()
	if diff := cmp.Diff(sortNFTDump(want), sortNFTDump(got)); diff != "" {
		t.Errorf("nftables dump differs from upstream's expected (-want +got, in compare order):\n%s\nfull dump:\n%s", diff, got)
	}
}

func TestRenderNFTMatchesUpstreamOverallGolden(t *testing.T) {
	got, err := RenderNFT(nftGoldenConfig(), overallServices())
	if err != nil {
		t.Fatal(err)
	}
	assertNFTDumpEqual(t, readTestdata(t, "nftables-overall.txt"), got)
}

func TestRenderNFTWithoutServicesIsUpstreamBaseRules(t *testing.T) {
	got, err := RenderNFT(nftGoldenConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	assertNFTDumpEqual(t, baseRulesNFT(t), got)
}

// The compare order keeps each chain's rule order, so a swapped rule is a
// failure, not a reordering the sort hides.
func TestSortNFTDumpKeepsRuleOrderWithinAChain(t *testing.T) {
	a := "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return\nadd rule ip kube-proxy masquerading masquerade fully-random\n"
	b := "add rule ip kube-proxy masquerading masquerade fully-random\nadd rule ip kube-proxy masquerading mark and 0x4000 == 0 return\n"
	if sortNFTDump(a) == sortNFTDump(b) {
		t.Fatal("two orders of one chain's rules compare equal")
	}
	c := "add element ip kube-proxy cluster-ips { 172.30.0.42 }\nadd element ip kube-proxy cluster-ips { 172.30.0.41 }\n"
	d := "add element ip kube-proxy cluster-ips { 172.30.0.41 }\nadd element ip kube-proxy cluster-ips { 172.30.0.42 }\n"
	if sortNFTDump(c) != sortNFTDump(d) {
		t.Fatal("element order matters, but the kernel's set has none")
	}
}

func TestNFTChainNamesMatchUpstream(t *testing.T) {
	const (
		upNS   = "very-long-namespace-name-abcdefghijklmnopqrstuvwxyz0123456789xx"
		upName = "very-long-service-name-why-would-you-even-do-this-i-mean-really"
		upPort = "port-443-providing-the-hypertext-transmission-protocol-with-tls"
	)
	// Names from upstream's proxier_test.go: expected dumps and the name tests.
	for _, tc := range []struct{ got, want string }{
		{NFTServicePortChainNameBase("ns1", "svc1", "TCP", "p80"), "ULMVA6XW-ns1/svc1/tcp/p80"},
		{NFTServicePortChainNameBase("ns5", "svc5", "tcp", "p80"), "HVFWP5L3-ns5/svc5/tcp/p80"},
		{NFTEndpointChainNameBase("ns1", "svc1", "tcp", "p80", "10.180.0.1", "80"), "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
		{NFTEndpointChainNameBase("ns4", "svc4", "tcp", "p80", "10.180.0.5", "80"), "5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"},
		// Test_servicePortChainNameBase and Test_servicePortEndpointChainNameBase.
		{NFTServicePortChainNameBase("testing", "service", "tcp", "http"), "P4ZYZVCF-testing/service/tcp/http"},
		{NFTServicePortChainNameBase("testing", "service", "tcp", "https"), "LZBRENCP-testing/service/tcp/https"},
		{NFTServicePortChainNameBase(upNS, upName, "sctp", upPort), "KR6NACJP-" + upNS + "/" + upName + "/sctp/" + upPort},
		{NFTEndpointChainNameBase("testing", "service", "tcp", "http", "10.180.0.1", "80"), "JO2XBXZR-testing/service/tcp/http__10.180.0.1/80"},
		{NFTEndpointChainNameBase("testing", "service", "tcp", "http", "10.180.0.2", "80"), "5S6H3H22-testing/service/tcp/http__10.180.0.2/80"},
		{NFTEndpointChainNameBase("testing", "service", "tcp", "http", "fd80:abcd:12::a1b2:c3d4:e5f6:9999", "80"),
			"U7E2ET36-testing/service/tcp/http__fd80.abcd.12..a1b2.c3d4.e5f6.9999/80"},
		{NFTEndpointChainNameBase(upNS, upName, "sctp", upPort, "1234:5678:9abc:def0::abc:1234", "443"),
			"5YS7AFEA-" + upNS + "/" + upName + "/sctp/" + upPort + "__1234.5678.9abc.def0..abc.1234/443"},
		{NFTEndpointChainNameBase(upNS, upName, "sctp", upPort, "1234:5678:9abc:def0::abcd:1234:5678", "443"),
			"CI6C53Q3-" + upNS + "/" + upName + "/sctp/" + upPort + "__1234.5678.9abc.def0..abcd.1234..."},
		{NFTEndpointChainNameBase(upNS, upName, "sctp", upPort, "1234:5678:9abc:def0::abcd:1234:8765", "443"),
			"2FLXFK6X-" + upNS + "/" + upName + "/sctp/" + upPort + "__1234.5678.9abc.def0..abcd.1234..."},
	} {
		if tc.got != tc.want {
			t.Errorf("chain name base %q, want %q", tc.got, tc.want)
		}
	}
	long := strings.Repeat("n", 63)
	got := NFTEndpointChainNameBase(long, long, "sctp", long, "fd00:1111:2222:3333:4444:5555:6666:7777", "65535")
	if len(got) != nftChainNameBaseMax || !strings.HasSuffix(got, "...") {
		t.Errorf("over-long name not cut to %d with \"...\": %d %q", nftChainNameBaseMax, len(got), got)
	}
	if strings.Contains(got, ":") {
		t.Errorf("IPv6 colons left in a chain name: %q", got)
	}
}

// nftChainRules returns the rules of chain in fake, one per line.
func nftChainRules(t *testing.T, fake *knftables.Fake, chain string) string {
	t.Helper()
	ch := fake.Table.Chains[chain]
	if ch == nil {
		t.Fatalf("no chain %q", chain)
	}
	var rules []string
	for _, r := range ch.Rules {
		rules = append(rules, r.Rule)
	}
	return strings.Join(rules, "\n")
}

func nftRunFull(t *testing.T, cfg NFTConfig, services []ServicePort) *knftables.Fake {
	t.Helper()
	tx, err := RenderNFTTransaction(cfg, services)
	if err != nil {
		t.Fatal(err)
	}
	fake := NewNFTFake(cfg.IPv6)
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("%v\n%s", err, tx)
	}
	return fake
}

// Upstream's TestLoadBalancer input: two LB IPs and two source ranges, one
// of which holds the node IP, so (proxier.go, usesFWChain) the LB IPs are
// allowed as sources too, for node -> VIP traffic that loops back.
func TestNFTFirewallChainAllowsLBIPsWhenTheNodeIsInARange(t *testing.T) {
	sp := ServicePort{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.41"), Port: 80,
		NodePort: 3001, LoadBalancerIPs: addrs("1.2.3.4", "5.6.7.8"),
		LoadBalancerSourceRanges: []string{"192.168.0.0/24", " 203.0.113.0/25"},
		Endpoints:                []Endpoint{ready("10.180.0.1", 80)}}
	fake := nftRunFull(t, nftGoldenConfig(), []ServicePort{sp})
	fw := nftPrefixFirewall + NFTServicePortChainNameBase("ns1", "svc1", "tcp", "p80")
	want := "ip saddr != { 192.168.0.0/24 , 203.0.113.0/25 , 1.2.3.4 , 5.6.7.8 } drop"
	if got := nftChainRules(t, fake, fw); got != want {
		t.Errorf("%s:\n got %s\nwant %s", fw, got, want)
	}
	var fwIPs []string
	for _, e := range fake.Table.Maps[nftFirewallIPsMap].Elements {
		fwIPs = append(fwIPs, strings.Join(e.Key, " . ")+" : "+strings.Join(e.Value, " "))
	}
	slices.Sort(fwIPs)
	if got, want := strings.Join(fwIPs, "\n"), "1.2.3.4 . tcp . 80 : goto "+fw+"\n5.6.7.8 . tcp . 80 : goto "+fw; got != want {
		t.Errorf("firewall-ips:\n%s\nwant\n%s", got, want)
	}

	// With the node outside every range, only the ranges are allowed.
	sp.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
	fake = nftRunFull(t, nftGoldenConfig(), []ServicePort{sp})
	if got, want := nftChainRules(t, fake, fw), "ip saddr != { 203.0.113.0/25 } drop"; got != want {
		t.Errorf("%s:\n got %s\nwant %s", fw, got, want)
	}
}

// IPv6: table ip6, ipv6_addr sets, "ip6" matches, no NodePorts on ::1 when
// every address accepts them, and endpoint chain names with dots for colons.
func TestRenderNFTIPv6(t *testing.T) {
	cfg := NFTConfig{Config: Config{NodeIPs: addrs("2001:db8::1"), IPv6: true, ClusterCIDR: "10.0.0.0/8,fd00:10::/64",
		MasqueradeMark: "0x4000"}, ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd00:10:96::/112")}}
	sp := ServicePort{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP", ClusterIP: addr("fd00:10:96::1"), Port: 80,
		NodePort: 3001, Endpoints: []Endpoint{ready("fd00:10::5", 8080), ready("10.0.0.5", 8080)}}
	v4 := nftClusterIPService("ns2", "svc2", "p80", 80, "172.30.0.42", ready("10.0.0.6", 80))
	dump, err := RenderNFT(cfg, []ServicePort{sp, v4})
	if err != nil {
		t.Fatal(err)
	}
	ep := nftPrefixEndpoint + NFTEndpointChainNameBase("ns1", "svc1", "tcp", "p80", "fd00:10::5", "8080")
	svc := nftPrefixService + NFTServicePortChainNameBase("ns1", "svc1", "tcp", "p80")
	for _, line := range []string{
		"add table ip6 kube-proxy { comment \"rules for kube-proxy\" ; }",
		"add set ip6 kube-proxy cluster-ips { type ipv6_addr ; comment \"Active ClusterIPs\" ; }",
		"add rule ip6 kube-proxy cluster-ips-check ip6 daddr { fd00:10:96::/112 } drop comment \"Drop traffic to unallocated ClusterIPs\"",
		"add rule ip6 kube-proxy services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports",
		"add rule ip6 kube-proxy " + svc + " ip6 daddr fd00:10:96::1 ip6 saddr != fd00:10::/64 jump mark-for-masquerade",
		"add rule ip6 kube-proxy " + svc + " numgen random mod 1 vmap { 0 : goto " + ep + " }",
		"add rule ip6 kube-proxy " + ep + " meta l4proto tcp dnat to [fd00:10::5]:8080",
	} {
		if !strings.Contains(dump, line+"\n") {
			t.Errorf("IPv6 dump lacks\n%s\ndump:\n%s", line, dump)
		}
	}
	if !strings.Contains(ep, "__fd00.10..5/8080") {
		t.Errorf("endpoint chain %q keeps colons", ep)
	}
	for _, other := range []string{"172.30.0.42", "10.0.0.5", "nodeport-ips"} {
		if strings.Contains(dump, other) {
			t.Errorf("IPv6 dump contains %q (other family, or a NodePort set with every address accepting NodePorts)", other)
		}
	}
}
