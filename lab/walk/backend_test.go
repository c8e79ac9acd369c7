package walk

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
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

func TestAPodThatLandsOnItsOwnNodeThroughTheNLBGetsTheAnswerOverItsVeth(t *testing.T) {
	top, err := spec.Load("../../topologies/nlb-instance.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Derive(top, *top.Walk("C1-hairpin"), 40000, "", Picks{Target: "node71", Endpoint: "pod71"})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Hairpin {
		t.Fatal("pod71 -> NLB (client IP preserved) -> node71 is not derived as a hairpin")
	}
	last := e.Hops[len(e.Hops)-1]
	if last.Leg != Reply || last.Point != (Point{"pod71", "eth0"}) || last.Dir != In || last.Src != netip.MustParseAddr("192.168.2.70") {
		t.Errorf("last hop %s %s %s from %s; want the reply into pod71/eth0 from node71's own address", last.Leg, last.Point, last.Dir, last.Src)
	}
	for _, h := range e.Hops {
		if h.Leg == Reply && (h.Point.Object == "nlb-web" || h.Point.Object == spec.RouterName) {
			t.Errorf("the reply is expected at %s; it never leaves node71", h.Point)
		}
	}
	// The same walk from the client instance is not a hairpin.
	w := *top.Walk("C1-b")
	if e, err := Derive(top, w, 40000, "", Picks{Target: "node71", Endpoint: "pod71"}); err != nil || e.Hairpin {
		t.Errorf("C1-b derived as a hairpin (%v)", err)
	}
}

func TestCrossAZCountsTheFlowsConnectionsAndNotHealthChecks(t *testing.T) {
	azs := map[string]string{"a.eth0": "us-east-1a", "b.eth0": "us-east-1b"}
	client, server := netip.MustParseAddrPort("10.0.1.10:40000"), netip.MustParseAddrPort("10.0.2.20:80")
	probe := netip.MustParseAddrPort("10.0.1.10:51000") // a health check from the same address
	at := func(iface string, dir Dir, src, dst netip.AddrPort, id uint16, f TCPInfo) Packet {
		return Packet{Point: Point{spec.RouterName, iface}, Dir: dir, Proto: "tcp", Src: src.Addr(), SrcPort: src.Port(),
			Dst: dst.Addr(), DstPort: dst.Port(), IPID: id, IPLen: 60, TCP: f}
	}
	cross := func(src, dst netip.AddrPort, id uint16, f TCPInfo) []Packet {
		return []Packet{at("a.eth0", In, src, dst, id, f), at("b.eth0", Out, src, dst, id, f)}
	}
	var pkts []Packet
	pkts = append(pkts, cross(client, server, 1, TCPInfo{SYN: true, Seq: 7})...)
	pkts = append(pkts, cross(client, server, 2, TCPInfo{ACK: true})...) // the handshake's ACK: not classified, still the flow's
	pkts = append(pkts, cross(probe, server, 3, TCPInfo{SYN: true, Seq: 99})...)
	c := &Classifier{Proto: "tcp", ISN: 7, HaveISN: true}
	got := CountCrossAZ(azs, pkts, FlowPackets(c, pkts))
	if got.Packets != 2 || got.Crossings["us-east-1a -> us-east-1b"] != 2 {
		t.Errorf("counted %d packets %v; want the SYN and the ACK of the flow, not the health check", got.Packets, got.Crossings)
	}
}

func TestIPTargetsWithThePreservedClientOnTheTargetsNodeAreAHairpinToo(t *testing.T) {
	top, err := spec.Load("../../topologies/nlb-ip.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A web pod (a target) and another pod on its node (the client).
	var client, target string
	for _, tp := range top.Pods {
		if !strings.HasPrefix(tp.Manifest, "Deployment default/web") {
			continue
		}
		for _, cp := range top.Pods {
			if cp.Node == tp.Node && cp.Name != tp.Name && client == "" {
				client, target = cp.Name, tp.Name
			}
		}
	}
	if client == "" {
		t.Fatal("nlb-ip has no pod that shares a node with a web pod; the test needs one")
	}
	w := *top.Walk("C3-preserve")
	w.From = client
	e, err := Derive(top, w, 40000, "", Picks{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	last := e.Hops[len(e.Hops)-1]
	if !e.Hairpin || last.Point != (Point{client, "eth0"}) || last.Leg != Reply {
		t.Errorf("hairpin %v, last hop %s %s %s; want the reply into %s from %s", e.Hairpin, last.Leg, last.Point, last.Dir, client, target)
	}
	for _, h := range e.Hops {
		if h.Leg == Reply && (h.Point.Object == spec.RouterName || strings.HasPrefix(h.Point.Object, "nlb-")) {
			t.Errorf("the reply is expected at %s; it never leaves the node", h.Point)
		}
	}
	w.From = target
	self, err := Derive(top, w, 40000, "", Picks{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if !self.Hairpin || self.Hops[len(self.Hops)-1].Leg != Request {
		t.Errorf("onto itself: hairpin %v, and the walk should end with the martian SYN", self.Hairpin)
	}
}

func TestAPodToItsOwnNodesNodePortNeverLeavesTheNode(t *testing.T) {
	top, err := spec.Load("../../topologies/nodeport.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w := *top.Walk("B3")
	w.From, w.Via = "pod71", "node71" // pod71 is the endpoint too
	e, err := Derive(top, w, 40000, "pod71")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Hops) < 2 || e.Hops[0].Point != (Point{"pod71", "eth0"}) || e.Hops[1].Point.Object != "node71" {
		t.Fatalf("first hops %v", e.Hops[:2])
	}
	for _, h := range e.Hops {
		if h.Point.Object == spec.RouterName || h.Point.Iface == "eth0" && h.Point.Object == "node71" {
			t.Errorf("expected at %s %s %s: a pod's packet to its own node's address stays on the node", h.Leg, h.Point, h.Dir)
		}
	}
}
