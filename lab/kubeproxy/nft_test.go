package kubeproxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	// Names from upstream's expected dumps (proxier_test.go).
	for _, tc := range []struct{ got, want string }{
		{NFTServicePortChainNameBase("ns1", "svc1", "TCP", "p80"), "ULMVA6XW-ns1/svc1/tcp/p80"},
		{NFTServicePortChainNameBase("ns5", "svc5", "tcp", "p80"), "HVFWP5L3-ns5/svc5/tcp/p80"},
		{NFTEndpointChainNameBase("ns1", "svc1", "tcp", "p80", "10.180.0.1", "80"), "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
		{NFTEndpointChainNameBase("ns4", "svc4", "tcp", "p80", "10.180.0.5", "80"), "5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"},
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
