package run

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/walk"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestEntryTranslatedOnlyWhenTheReplyIsNotTheOriginalReversed(t *testing.T) {
	plain := Entry{Tuple{"tcp", ap("192.168.1.10:40000"), ap("192.168.1.51:80")}, Tuple{"tcp", ap("192.168.1.51:80"), ap("192.168.1.10:40000")}}
	dnat := Entry{Tuple{"tcp", ap("192.168.1.10:40000"), ap("10.100.0.20:80")}, Tuple{"tcp", ap("192.168.1.51:8080"), ap("192.168.1.10:40000")}}
	snat := Entry{Tuple{"tcp", ap("192.168.1.10:40000"), ap("192.168.1.51:80")}, Tuple{"tcp", ap("192.168.1.51:80"), ap("192.168.1.50:61000")}}
	if plain.Translated() {
		t.Errorf("a forwarded flow without NAT reads as translated: %v", plain)
	}
	if !dnat.Translated() || !snat.Translated() {
		t.Errorf("DNAT %v or SNAT %v not seen as translated", dnat.Translated(), snat.Translated())
	}
}

// A health check moves the same chain counters as a walk; its conntrack
// entry has other tuples, so it is never taken for the walk's flow.
func TestFlowEntriesKeepOnlyTheWalksOwnTuplesAtThatObject(t *testing.T) {
	pt := walk.Point{Object: "node71", Iface: "eth0"}
	other := walk.Point{Object: "node81", Iface: "eth0"}
	pkts := []walk.Packet{
		{Point: pt, Proto: "tcp", Src: netip.MustParseAddr("192.168.2.10"), SrcPort: 40000, Dst: netip.MustParseAddr("192.168.1.71"), DstPort: 80, TCP: walk.TCPInfo{SYN: true, Seq: 1000}},
		{Point: other, Proto: "tcp", Src: netip.MustParseAddr("192.168.2.10"), SrcPort: 40001, Dst: netip.MustParseAddr("192.168.1.81"), DstPort: 80, TCP: walk.TCPInfo{SYN: true, Seq: 1000}},
	}
	cl := &walk.Classifier{Proto: "tcp", HaveISN: true, ISN: 1000}
	flow := FlowTuples(cl, pkts, "node71")
	walkEntry := Entry{Tuple{"tcp", ap("192.168.2.10:40000"), ap("192.168.1.71:80")}, Tuple{"tcp", ap("192.168.1.71:80"), ap("192.168.2.10:40000")}}
	healthCheck := Entry{Tuple{"tcp", ap("192.168.96.5:33000"), ap("192.168.1.70:30080")}, Tuple{"tcp", ap("192.168.1.71:8080"), ap("192.168.1.70:33000")}}
	elsewhere := Entry{Tuple{"tcp", ap("192.168.2.10:40001"), ap("192.168.1.81:80")}, Tuple{"tcp", ap("192.168.1.81:80"), ap("192.168.2.10:40001")}}
	got := FlowEntries([]Entry{healthCheck, walkEntry, elsewhere}, flow)
	if len(got) != 1 || got[0] != walkEntry {
		t.Fatalf("flow entries at node71 = %v, want only the walk's %v", got, walkEntry)
	}
}

func TestNetstatCounterReadsTheNamedColumnOfItsSection(t *testing.T) {
	netstat := "TcpExt: SyncookiesSent IPReversePathFilter TW\nTcpExt: 0 7 2\nIpExt: InNoRoutes InTruncatedPkts\nIpExt: 3 0\n"
	if v, ok := NetstatCounter(netstat, "TcpExt", "IPReversePathFilter"); !ok || v != 7 {
		t.Errorf("IPReversePathFilter = %d, %v; want 7", v, ok)
	}
	if v, ok := NetstatCounter(netstat, "IpExt", "InNoRoutes"); !ok || v != 3 {
		t.Errorf("InNoRoutes = %d, %v; want 3", v, ok)
	}
	if _, ok := NetstatCounter(netstat, "IpExt", "Nope"); ok {
		t.Error("a missing counter was found")
	}
}

func TestCountedDropsAreTheDropAndRejectRulesThatCounted(t *testing.T) {
	save := "*filter\n:FORWARD ACCEPT [0:0]\n[5:300] -A FORWARD -p tcp -m tcp --dport 8080 -j DROP\n[0:0] -A FORWARD -j REJECT --reject-with icmp-port-unreachable\n[9:900] -A FORWARD -j ACCEPT\nCOMMIT\n*raw\n[2:120] -A PREROUTING -s 10.0.0.0/8 -j DROP\nCOMMIT\n"
	got := CountedDrops(save)
	want := []string{"filter: -A FORWARD -p tcp -m tcp --dport 8080 -j DROP (5 packets)", "raw: -A PREROUTING -s 10.0.0.0/8 -j DROP (2 packets)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("counted drops\n got %q\nwant %q", got, want)
	}
}
