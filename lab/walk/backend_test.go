package walk

import (
	"net/netip"
	"strings"
	"testing"
)

func TestBackendConnectionIsTheFlowInBothDirectionsAndNothingElse(t *testing.T) {
	alb, pod := netip.MustParseAddrPort("192.168.102.4:42881"), netip.MustParseAddrPort("192.168.3.5:80")
	c := &Classifier{Proto: "tcp", HTTP: true, Token: []byte("tok"), ClientPort: 40000, Backend: &Conn{Src: alb, Dst: pod}}
	tcp := func(src, dst netip.AddrPort, f TCPInfo) *Packet {
		return &Packet{Proto: "tcp", Src: src.Addr(), SrcPort: src.Port(), Dst: dst.Addr(), DstPort: dst.Port(), TCP: f}
	}
	for _, tc := range []struct {
		name string
		p    *Packet
		want Leg
	}{
		{"the ALB's SYN, no payload", tcp(alb, pod, TCPInfo{SYN: true}), Request},
		{"the pod's RST", tcp(pod, alb, TCPInfo{RST: true, ACK: true}), Reply},
		{"a health check from the same node, another port", tcp(netip.AddrPortFrom(alb.Addr(), 50000), pod, TCPInfo{SYN: true}), ""},
		{"the same ports to another pod", tcp(alb, netip.MustParseAddrPort("192.168.2.6:80"), TCPInfo{SYN: true}), ""},
		{"the pod to the ALB's port from elsewhere", tcp(netip.MustParseAddrPort("192.168.2.6:80"), alb, TCPInfo{ACK: true}), ""},
	} {
		if got := c.Leg(tc.p); got != tc.want {
			t.Errorf("%s: leg %q, want %q", tc.name, got, tc.want)
		}
	}
	// Without Backend a payload-less SYN belongs to no HTTP flow.
	c.Backend = nil
	if got := c.Leg(tcp(alb, pod, TCPInfo{SYN: true})); got != "" {
		t.Errorf("without the backend connection a bare SYN is leg %q", got)
	}
}

func TestARSTIsAMismatchOnlyWhenNothingElseMatchesTheHop(t *testing.T) {
	h := Hop{Leg: Reply, Point: Point{"pod", "eth0"}, Dir: Out, Src: netip.MustParseAddr("192.168.3.5"), Dst: netip.MustParseAddr("192.168.102.4")}
	rst := &Packet{Proto: "tcp", Src: h.Src, Dst: h.Dst, TCP: TCPInfo{RST: true, ACK: true}}
	synack := &Packet{Proto: "tcp", Src: h.Src, Dst: h.Dst, TCP: TCPInfo{SYN: true, ACK: true}}
	r := judge(h, []*Packet{rst})
	if r.Verdict != Mismatch || !strings.Contains(r.Describe(), "a TCP RST from 192.168.3.5") {
		t.Errorf("a lone RST: %s %q", r.Verdict, r.Describe())
	}
	if r := judge(h, []*Packet{rst, synack}); r.Verdict != OK || r.Seen != synack {
		t.Errorf("a RST beside the SYN-ACK: %s, saw %v", r.Verdict, r.Seen)
	}
}
