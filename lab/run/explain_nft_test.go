package run

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// A SYN of walk B1 on node51 in nftables mode, as nft monitor trace printed it.
const sampleNFTTrace = `trace id 70408b98 ip labctl-trace pre packet: iif "eni99a92926c5c" ip saddr 192.168.1.51 ip daddr 10.100.0.100 ip dscp cs0 ip ttl 64 ip id 17686 ip length 60 tcp sport 41234 tcp dport 80 tcp flags == syn
trace id 70408b98 ip kube-proxy nat-prerouting packet: iif "eni99a92926c5c" ip saddr 192.168.1.51 ip daddr 10.100.0.100 ip ttl 64 ip id 17686 ip length 60 tcp sport 41234 tcp dport 80 tcp flags == syn
trace id 70408b98 ip kube-proxy nat-prerouting rule jump services (verdict jump services)
trace id 70408b98 ip kube-proxy services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-SUSTUHLJ-default/web/tcp/http)
trace id 70408b98 ip kube-proxy service-SUSTUHLJ-default/web/tcp/http rule numgen random mod 3 vmap { 0 : goto endpoint-HF4ASHDN-default/web/tcp/http__192.168.1.6/80, 1 : goto endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80 } (verdict goto endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80)
trace id 70408b98 ip kube-proxy endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80 rule meta l4proto tcp dnat to 192.168.1.7:80 (verdict accept)
trace id 70408b98 ip kube-proxy filter-forward packet: iif "eni99a92926c5c" oif "eth0" ip saddr 192.168.1.51 ip daddr 192.168.1.7 ip ttl 63 ip id 17686 ip length 60 tcp sport 41234 tcp dport 80 tcp flags == syn
trace id 70408b98 ip kube-proxy filter-forward rule ct state new jump cluster-ips-check (verdict jump cluster-ips-check)
trace id 70408b98 ip kube-proxy filter-forward policy accept
trace id 70408b98 ip labctl-trace pre packet: iif "eni99a92926c5c" ip saddr 192.168.1.51 ip daddr 10.100.0.100 ip id 17687 ip length 52 tcp sport 41234 tcp dport 80 tcp flags == ack
`

func TestParseNFTTraceKeepsEachPacketsRulesWithItsPreDNATAddresses(t *testing.T) {
	ps := ParseNFTTrace(strings.Split(sampleNFTTrace, "\n"))
	if len(ps) != 2 {
		t.Fatalf("%d packets, want 2 (a reused trace id with a new IP ID is a new packet)", len(ps))
	}
	p := ps[0]
	if p.IPID != "17686" || p.First[1] != netip.MustParseAddrPort("10.100.0.100:80") || p.Now[1] != netip.MustParseAddrPort("192.168.1.7:80") {
		t.Errorf("packet %+v: want IP ID 17686, first to the VIP, last to the endpoint", p)
	}
	if len(p.Rules) != 5 || p.Rules[1].Dst.Addr() != netip.MustParseAddr("10.100.0.100") {
		t.Errorf("rules %+v", p.Rules)
	}
	flow := map[Tuple]bool{{"tcp", netip.MustParseAddrPort("192.168.1.51:41234"), netip.MustParseAddrPort("10.100.0.100:80")}: true}
	if got := FlowNFT(ps, flow); len(got) != 2 {
		t.Errorf("the walk's own packets: %d, want 2", len(got))
	}
	if got := FlowNFT(ps, map[Tuple]bool{}); len(got) != 0 {
		t.Errorf("another flow's packets kept: %d", len(got))
	}
	if findNFT(ps, 17686, netip.MustParseAddr("192.168.1.51")) != p {
		t.Error("the captured packet is not joined to its trace by IP ID and source")
	}
}

func TestNFTObjectsNameTheMapElementTheServiceChainAndTheEndpointChain(t *testing.T) {
	got := NFTObjects(ParseNFTTrace(strings.Split(sampleNFTTrace, "\n")))
	want := []string{
		"service-ips element 10.100.0.100 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http",
		"service-SUSTUHLJ-default/web/tcp/http",
		"endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80 (dnat to 192.168.1.7:80)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNFTExplainSaysTheElementTheNumgenChoiceAndTheDNAT(t *testing.T) {
	text := strings.Join(NFTExplain("node51", ParseNFTTrace(strings.Split(sampleNFTTrace, "\n"))[0]), "\n")
	for _, w := range []string{
		"node51: nft kube-proxy services: verdict map @service-ips matched element 10.100.0.100 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http",
		"node51: nft kube-proxy service-SUSTUHLJ-default/web/tcp/http: numgen random mod 3 chose endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80",
		"node51: nft kube-proxy endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80: DNAT 10.100.0.100:80 -> 192.168.1.7:80",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("explanation lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "jump services") || strings.Contains(text, "cluster-ips-check") {
		t.Errorf("explanation keeps the dispatch rules every connection passes:\n%s", text)
	}
}

func TestParseNFTTraceSkipsWhatItCannotRead(t *testing.T) {
	for _, in := range []string{"", "trace id", "trace id x ip kube-proxy services rule (verdict", "garbage\x00\xff",
		"trace id 1 ip t c packet: ip saddr 999.1.1.1 ip daddr 1.1.1.1 tcp sport 1 tcp dport 2"} {
		if ps := ParseNFTTrace(strings.Split(in, "\n")); len(ps) != 0 {
			t.Errorf("%q: %d packets", in, len(ps))
		}
	}
}

func TestNFTMapHasElementReadsTheListedElementsOnly(t *testing.T) {
	listing := `table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.100.0.10 . tcp . 53 : goto service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp,
			     10.100.0.100 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http }
	}
}`
	if !NFTMapHasElement(listing, "10.100.0.100 . tcp . 80") || !NFTMapHasElement(listing, "10.100.0.10 . tcp . 53") {
		t.Error("a listed element is reported missing")
	}
	for _, k := range []string{"10.100.0.10 . udp . 53", "10.100.0.100 . tcp . 8", "10.100.0.1 . tcp . 80"} {
		if NFTMapHasElement(listing, k) {
			t.Errorf("%s reported present", k)
		}
	}
	if NFTMapHasElement("map service-ips {\n}", "10.100.0.100 . tcp . 80") {
		t.Error("an empty map has an element")
	}
}

// The SYN of walk C1 on node51 (an NLB instance target, Cluster policy)
// in nftables mode, as nft monitor trace printed it (ether fields cut).
const sampleNodePortTrace = `trace id e9f4196a ip labctl-trace-4242 pre packet: iif "eth0" ip saddr 192.168.50.10 ip daddr 192.168.1.50 ip dscp cs0 ip ecn not-ect ip ttl 61 ip id 40165 ip length 60 tcp sport 60546 tcp dport 30080 tcp flags == syn tcp window 62727
trace id e9f4196a ip labctl-trace-4242 pre rule ip saddr 192.168.50.10 ip daddr 192.168.1.50 meta l4proto tcp th dport 30080 meta nftrace set 1 (verdict continue)
trace id e9f4196a ip kube-proxy filter-prerouting-pre-dnat packet: iif "eth0" ip saddr 192.168.50.10 ip daddr 192.168.1.50 ip dscp cs0 ip ecn not-ect ip ttl 61 ip id 40165 ip length 60 tcp sport 60546 tcp dport 30080 tcp flags == syn tcp window 62727
trace id e9f4196a ip kube-proxy filter-prerouting-pre-dnat rule ct state new jump firewall-check (verdict jump firewall-check)
trace id e9f4196a ip kube-proxy filter-prerouting-pre-dnat policy accept
trace id e9f4196a ip kube-proxy nat-prerouting packet: iif "eth0" ip saddr 192.168.50.10 ip daddr 192.168.1.50 ip dscp cs0 ip ecn not-ect ip ttl 61 ip id 40165 ip length 60 tcp sport 60546 tcp dport 30080 tcp flags == syn tcp window 62727
trace id e9f4196a ip kube-proxy nat-prerouting rule jump services (verdict jump services)
trace id e9f4196a ip kube-proxy services rule ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports (verdict goto external-SUSTUHLJ-default/web/tcp/http)
trace id e9f4196a ip kube-proxy external-SUSTUHLJ-default/web/tcp/http rule jump mark-for-masquerade (verdict jump mark-for-masquerade)
trace id e9f4196a ip kube-proxy mark-for-masquerade rule meta mark set meta mark | 0x00004000 (verdict continue)
trace id e9f4196a ip kube-proxy external-SUSTUHLJ-default/web/tcp/http rule goto service-SUSTUHLJ-default/web/tcp/http (verdict goto service-SUSTUHLJ-default/web/tcp/http)
trace id e9f4196a ip kube-proxy service-SUSTUHLJ-default/web/tcp/http rule numgen random mod 1 vmap { 0 : goto endpoint-DT2LUSKJ-default/web/tcp/http__192.168.2.71/80 } (verdict goto endpoint-DT2LUSKJ-default/web/tcp/http__192.168.2.71/80)
trace id e9f4196a ip kube-proxy endpoint-DT2LUSKJ-default/web/tcp/http__192.168.2.71/80 rule meta l4proto tcp dnat to 192.168.2.71:80 (verdict accept)
trace id e9f4196a ip kube-proxy filter-forward packet: iif "eth0" oif "eth0" ip saddr 192.168.50.10 ip daddr 192.168.2.71 ip dscp cs0 ip ecn not-ect ip ttl 60 ip id 40165 ip length 60 tcp sport 60546 tcp dport 80 tcp flags == syn tcp window 62727
trace id e9f4196a ip kube-proxy filter-forward rule ct state new jump service-endpoints-check (verdict jump service-endpoints-check)
trace id e9f4196a ip kube-proxy filter-forward rule ct state new jump cluster-ips-check (verdict jump cluster-ips-check)
trace id e9f4196a ip kube-proxy filter-forward policy accept meta mark 0x00004000
trace id e9f4196a ip kube-proxy nat-postrouting packet: iif "eth0" oif "eth0" ip saddr 192.168.50.10 ip daddr 192.168.2.71 ip dscp cs0 ip ecn not-ect ip ttl 60 ip id 40165 ip length 60 tcp sport 60546 tcp dport 80 tcp flags == syn tcp window 62727
trace id e9f4196a ip kube-proxy nat-postrouting rule jump masquerading (verdict jump masquerading)
trace id e9f4196a ip kube-proxy masquerading rule meta mark set meta mark ^ 0x00004000 (verdict continue)
trace id e9f4196a ip kube-proxy masquerading rule masquerade fully-random (verdict accept)
`

func TestNFTObjectsOfANodePortNameTheNodePortElementTheExternalChainTheMasqueradeMarkAndTheEndpoint(t *testing.T) {
	got := NFTObjects(ParseNFTTrace(strings.Split(sampleNodePortTrace, "\n")))
	want := []string{
		"service-nodeports element tcp . 30080 : goto external-SUSTUHLJ-default/web/tcp/http",
		"external-SUSTUHLJ-default/web/tcp/http",
		"mark-for-masquerade",
		"service-SUSTUHLJ-default/web/tcp/http",
		"endpoint-DT2LUSKJ-default/web/tcp/http__192.168.2.71/80 (dnat to 192.168.2.71:80)",
		"masquerading",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	text := strings.Join(NFTExplain("node51", ParseNFTTrace(strings.Split(sampleNodePortTrace, "\n"))[0]), "\n")
	for _, w := range []string{
		"node51: nft kube-proxy services: verdict map @service-nodeports matched element tcp . 30080 : goto external-SUSTUHLJ-default/web/tcp/http",
		"node51: nft kube-proxy mark-for-masquerade: meta mark set meta mark | 0x00004000 (verdict continue)",
		"node51: nft kube-proxy endpoint-DT2LUSKJ-default/web/tcp/http__192.168.2.71/80: DNAT 192.168.1.50:30080 -> 192.168.2.71:80",
		"node51: nft kube-proxy masquerading: masquerade fully-random (verdict accept)",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("explanation lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "labctl-trace") || strings.Contains(text, "mark ^ 0x00004000") {
		t.Errorf("explanation keeps labctl's own trace rule or the masquerading chain's mark reset:\n%s", text)
	}
}

func TestStaleNFTTracesKeepsARunningWalksTableAndPicksDeadOnesAndOrphanedPrinters(t *testing.T) {
	tables := "table ip kube-proxy\ntable ip labctl-trace-100\ntable ip labctl-trace-200\ntable ip labctl-trace-300\ntable ip labctl-tracer\n"
	procs := []nftTraceProc{
		{PID: 101, PPID: 100, Table: "labctl-trace-100"}, // a walk running: its labctl is the printer's parent
		{PID: 201, PPID: 1, Table: "labctl-trace-200"},   // labctl 200 was killed: its printer went to init
		{PID: 501, PPID: 300, Table: "labctl-trace-400"}, // labctl 400 was killed: its printer went to subreaper 300
		{PID: 601, PPID: 7, Table: "not-a-trace-table"},  // a tag that names no trace table
	}
	stale, orphans := staleNFTTraces(tables, procs)
	if strings.Join(stale, " ") != "labctl-trace-200 labctl-trace-300" {
		t.Errorf("stale tables %v, want labctl-trace-200 (owner dead) and labctl-trace-300 (pid 300 lives, but no printer of its reads the table)", stale)
	}
	if fmt.Sprint(orphans) != "[201 501 601]" {
		t.Errorf("orphaned printers %v, want [201 501 601]", orphans)
	}
	if stale, orphans := staleNFTTraces("table ip labctl-trace-100\n", procs[:1]); len(stale)+len(orphans) != 0 {
		t.Errorf("a running walk's table or printer picked: %v %v", stale, orphans)
	}
}
