package run

import (
	"net/netip"
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
