package walk

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
)

func TestStoppedAtIsTheLastHopSeenAndTheNamespaceThatHadToForward(t *testing.T) {
	in := Point{Object: "node51", Iface: "enia"}
	out := Point{Object: "node51", Iface: "eth0"}
	seen := &Packet{}
	r := &Report{Hops: []HopResult{
		{Hop: Hop{Point: Point{Object: "pod51", Iface: "eth0"}, Dir: Out}, Verdict: OK, Seen: seen},
		{Hop: Hop{Point: in, Dir: In}, Verdict: OK, Seen: seen},
		{Hop: Hop{Point: out, Dir: Out}, Verdict: Missing},
		{Hop: Hop{Point: Point{Object: "vpc", Iface: "node51.eth0"}, Dir: In}, Verdict: Missing},
	}}
	st := StoppedAt(r)
	if st == nil || st.Last.Point != in || st.Next.Point != out || st.Decider != "node51" {
		t.Fatalf("stop = %+v, want last %v, next %v, decider node51", st, in, out)
	}
	r.Hops[2].Verdict, r.Hops[2].Seen = OK, seen
	if st := StoppedAt(r); st.Decider != "vpc" {
		t.Errorf("a packet that left node51 and never reached the router: decider %s, want vpc", st.Decider)
	}
	for i := range r.Hops {
		r.Hops[i].Verdict, r.Hops[i].Seen = OK, seen
	}
	if st := StoppedAt(r); st != nil {
		t.Errorf("a walk with every hop OK stopped at %+v", st)
	}
}

func TestARPExchangeCountsUnansweredRequestsForTheTargetOnly(t *testing.T) {
	pt := Point{Object: "node51", Iface: "eth0"}
	target := netip.MustParseAddr("192.168.1.81")
	req := Packet{Point: pt, Proto: "arp", ARPOp: layers.ARPRequest, Src: netip.MustParseAddr("192.168.1.50"), Dst: target, Frame: 3}
	other := Packet{Point: pt, Proto: "arp", ARPOp: layers.ARPRequest, Src: netip.MustParseAddr("192.168.1.50"), Dst: netip.MustParseAddr("192.168.1.1"), Frame: 4}
	elsewhere := req
	elsewhere.Point = Point{Object: "node71", Iface: "eth0"}
	reply := Packet{Point: pt, Proto: "arp", ARPOp: layers.ARPReply, Src: target, Dst: netip.MustParseAddr("192.168.1.50")}
	n, m, frames := ARPExchange([]Packet{req, other, elsewhere, req}, pt, target)
	if n != 2 || m != 0 || len(frames) != 2 {
		t.Errorf("requests %d replies %d frames %v; want 2 unanswered", n, m, frames)
	}
	if _, m, _ := ARPExchange([]Packet{req, reply}, pt, target); m != 1 {
		t.Errorf("the reply was not counted")
	}
}

func TestDecodeReadsARPWhoHas(t *testing.T) {
	// An ARP request from 0a:00:00:00:00:01 (192.168.1.50) for 192.168.1.81.
	frame := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0a, 0, 0, 0, 0, 1, 0x08, 0x06,
		0, 1, 0x08, 0, 6, 4, 0, 1,
		0x0a, 0, 0, 0, 0, 1, 192, 168, 1, 50,
		0, 0, 0, 0, 0, 0, 192, 168, 1, 81,
	}
	p := Decode(frame)
	if p.Proto != "arp" || p.ARPOp != layers.ARPRequest || p.Src != netip.MustParseAddr("192.168.1.50") || p.Dst != netip.MustParseAddr("192.168.1.81") {
		t.Fatalf("decoded %+v", p)
	}
	if got := p.Summary(); got != "0a:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, 192.168.1.50 > 192.168.1.81 ARP who-has 192.168.1.81 tell 192.168.1.50" {
		t.Errorf("summary %q", got)
	}
}

func TestAsidesAreTheClientsDNSAndTheUnansweredARP(t *testing.T) {
	client := Point{Object: "webclient", Iface: "eth0"}
	node := Point{Object: "node51", Iface: "eth0"}
	target, answeredIP := netip.MustParseAddr("192.168.1.81"), netip.MustParseAddr("192.168.1.1")
	pkts := []Packet{
		{Point: client, Proto: "udp", Src: netip.MustParseAddr("198.51.100.20"), SrcPort: 40000, Dst: netip.MustParseAddr("198.51.100.53"), DstPort: 53, Frame: 1},
		{Point: client, Proto: "udp", Src: netip.MustParseAddr("198.51.100.53"), SrcPort: 53, Dst: netip.MustParseAddr("198.51.100.20"), DstPort: 40000, Frame: 2},
		{Point: node, Proto: "arp", ARPOp: layers.ARPRequest, Dst: target, Frame: 3},
		{Point: node, Proto: "arp", ARPOp: layers.ARPRequest, Dst: answeredIP, Frame: 4},
		{Point: node, Proto: "arp", ARPOp: layers.ARPReply, Src: answeredIP, Frame: 5},
		{Point: node, Proto: "udp", SrcPort: 53, Frame: 6}, // DNS elsewhere: not the client's
	}
	got := Asides(&Classifier{Proto: "tcp"}, pkts, "webclient")
	if len(got) != 3 || got[0].Frame != 1 || got[1].Frame != 2 || got[2].Frame != 3 || !got[2].Bad {
		t.Fatalf("asides %+v; want the client's query and answer, and the one unanswered ARP request", got)
	}
	if got := Asides(&Classifier{Proto: "udp", DNS: true}, pkts, "webclient"); len(got) != 1 {
		t.Errorf("a DNS walk's own packets are its hops, not asides: %+v", got)
	}
}
