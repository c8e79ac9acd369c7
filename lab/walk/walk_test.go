package walk

import (
	"net"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/labctl/labctl/lab/spec"
)

func topo(t *testing.T) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/pod-networking.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func derive(t *testing.T, name string) *Expectation {
	t.Helper()
	top := topo(t)
	e, err := Derive(top, *top.Walk(name), 40000, "")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// perfect turns every hop into the packet a working data path shows there.
func perfect(e *Expectation, token string) []Packet {
	var out []Packet
	for _, h := range e.Hops {
		p := Packet{Point: h.Point, Dir: h.Dir, SrcMAC: h.SrcMAC, DstMAC: h.DstMAC, Src: h.Src, Dst: h.Dst,
			SrcPort: h.SrcPort, DstPort: h.DstPort, Proto: "icmp", Payload: []byte("x" + token)}
		p.ICMPType = layers.ICMPv4TypeEchoRequest
		if h.Leg == Reply {
			p.ICMPType = layers.ICMPv4TypeEchoReply
		}
		out = append(out, p)
	}
	return out
}

func points(e *Expectation, leg Leg) []string {
	var s []string
	for _, h := range e.Hops {
		if h.Leg == leg {
			s = append(s, h.Point.String()+" "+string(h.Dir))
		}
	}
	return s
}

func TestA1SameNodeNeverLeavesTheNode(t *testing.T) {
	e := derive(t, "A1")
	for _, h := range e.Hops {
		if h.Point.Object == spec.RouterName || strings.HasPrefix(h.Point.Iface, "eth") && h.Point.Object == "node51" {
			t.Errorf("A1 hop at %s: same-node traffic must not touch an ENI or the router", h.Point)
		}
	}
	if len(e.Hops) != 8 {
		t.Errorf("A1 has %d hops, want 4 per leg", len(e.Hops))
	}
	// Receiver's host veth rewrites the MACs towards the pod.
	h := e.Hops[2]
	if h.SrcMAC.String() != spec.HostVethMAC("default", "pod61").String() || h.DstMAC.String() != spec.PodMAC("default", "pod61").String() {
		t.Errorf("hop 3 MACs %s > %s", h.SrcMAC, h.DstMAC)
	}
}

func TestA2IsSwitchedNotRouted(t *testing.T) {
	e := derive(t, "A2")
	for _, h := range e.Hops {
		if h.Point == (Point{spec.RouterName, "br-a"}) {
			t.Errorf("A2 %s passes the router's IP layer; it must only be switched", h.Leg)
		}
		if h.Point == (Point{"node51", "eth0"}) && h.Leg == Request &&
			h.DstMAC.String() != spec.ENIMAC("node71", 0).String() {
			t.Errorf("A2 request leaves node51 to %s, want node71's eth0 MAC", h.DstMAC)
		}
	}
}

func TestA3ReplyGoesThroughTheRouterButTheRequestDoesNot(t *testing.T) {
	e := derive(t, "A3")
	req, rep := strings.Join(points(e, Request), ","), strings.Join(points(e, Reply), ",")
	if strings.Contains(req, "vpc/br-a") {
		t.Errorf("request passes the router: %s", req)
	}
	if !strings.Contains(rep, "vpc/br-a in") || !strings.Contains(rep, "vpc/br-a out") {
		t.Errorf("reply does not hairpin through the router: %s", rep)
	}
	for _, h := range e.Hops {
		if h.Leg == Reply && h.Point == (Point{"node81", "eth1"}) {
			if h.DstMAC.String() != spec.RouterMAC("a").String() {
				t.Errorf("reply leaves node81 eth1 to %s, want the router's MAC", h.DstMAC)
			}
			if !strings.Contains(h.Why, "rule 1536 from 192.168.1.81 lookup 2") {
				t.Errorf("reply hop does not name rule 1536: %s", h.Why)
			}
		}
	}
}

func TestA4SecondaryENIPodLeavesThroughItsENIForAnotherSubnet(t *testing.T) {
	e := derive(t, "A4-subnet")
	var out []string
	for _, h := range e.Hops {
		if h.Leg == Request && h.Point.Object == "node51" && h.Dir == Out && strings.HasPrefix(h.Point.Iface, "eth") {
			out = append(out, h.Point.Iface)
		}
	}
	if len(out) != 1 || out[0] != "eth1" {
		t.Errorf("pod61's request leaves node51 through %v, want eth1", out)
	}
}

func TestPerfectCaptureOfEveryWalkPasses(t *testing.T) {
	for _, w := range topo(t).Walks {
		if w.Kind != spec.WalkFlow {
			continue
		}
		e := derive(t, w.Name)
		c := &Classifier{Proto: "icmp", Token: []byte("tok")}
		if r := Check(e, c, perfect(e, "tok")); !r.Passed() {
			t.Errorf("%s: %s", w.Name, r.FirstFailure().Describe())
		}
	}
}

func TestMissingHopIsTheFirstFailure(t *testing.T) {
	e := derive(t, "A3")
	pk := perfect(e, "tok")
	pk = append(pk[:10], pk[11:]...) // drop reply hop 11 (node81/eth1 out)
	r := Check(e, &Classifier{Proto: "icmp", Token: []byte("tok")}, pk)
	f := r.FirstFailure()
	if f == nil || f.Verdict != Missing || f.Point != (Point{"node81", "eth1"}) {
		t.Fatalf("first failure %+v, want MISSING at node81/eth1", f)
	}
}

func TestWrongMACIsAMismatchThatSaysWhatWasSeen(t *testing.T) {
	e := derive(t, "A3")
	pk := perfect(e, "tok")
	pk[10].DstMAC = spec.ENIMAC("node51", 0) // reply sent on-link instead of to the router
	f := Check(e, &Classifier{Proto: "icmp", Token: []byte("tok")}, pk).FirstFailure()
	if f == nil || f.Verdict != Mismatch || !strings.Contains(f.Describe(), "dst MAC "+spec.ENIMAC("node51", 0).String()) {
		t.Fatalf("got %+v", f)
	}
}

func TestFlowSeenOffThePathFailsTheWalk(t *testing.T) {
	e := derive(t, "A1")
	pk := perfect(e, "tok")
	stray := pk[0]
	stray.Point = Point{"node51", "eth0"}
	pk = append(pk, stray)
	f := Check(e, &Classifier{Proto: "icmp", Token: []byte("tok")}, pk).FirstFailure()
	if f == nil || f.Verdict != Unexpected || f.Point != stray.Point {
		t.Fatalf("got %+v, want UNEXPECTED at node51/eth0", f)
	}
}

func TestOtherTrafficIsIgnored(t *testing.T) {
	e := derive(t, "A1")
	pk := perfect(e, "tok")
	other := pk[0]
	other.Payload = []byte("someone else's ping")
	other.Point = Point{"node51", "eth0"}
	if r := Check(e, &Classifier{Proto: "icmp", Token: []byte("tok")}, append(pk, other)); !r.Passed() {
		t.Fatal(r.FirstFailure().Describe())
	}
}

func TestTCPIsIdentifiedByTheClientISN(t *testing.T) {
	e := derive(t, "A2")
	syn := Packet{Point: Point{"pod51", "eth0"}, Dir: Out, Proto: "tcp", Src: e.From.IP, SrcPort: 40000,
		TCP: TCPInfo{SYN: true, Seq: 1000}}
	c := &Classifier{Proto: "tcp"}
	if !c.FindISN(e, []Packet{syn}) || c.ISN != 1000 {
		t.Fatalf("ISN not found")
	}
	synack := Packet{Proto: "tcp", TCP: TCPInfo{SYN: true, ACK: true, Ack: 1001}}
	natted := syn
	natted.Src, natted.SrcPort = e.To.IP, 1
	if c.Leg(&syn) != Request || c.Leg(&natted) != Request || c.Leg(&synack) != Reply {
		t.Error("SYN and SYN-ACK not classified by sequence numbers")
	}
	other := Packet{Proto: "tcp", TCP: TCPInfo{SYN: true, Seq: 5}}
	if c.Leg(&other) != "" {
		t.Error("another connection's SYN classified as the walk's")
	}
}

func TestDecodeReadsEthernetIPv4AndTCP(t *testing.T) {
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 1234, DstPort: 80, SYN: true, Seq: 77}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	p := Decode(buf.Bytes())
	if p.Proto != "tcp" || p.Src.String() != "10.0.0.1" || p.DstPort != 80 || !p.TCP.SYN || p.TCP.Seq != 77 ||
		p.SrcMAC.String() != "02:00:00:00:00:01" {
		t.Fatalf("decoded %+v", p)
	}
	if !strings.Contains(p.Summary(), "10.0.0.1.1234 > 10.0.0.2.80 TCP [S]") {
		t.Errorf("summary %q", p.Summary())
	}
}

func TestD2LeavesEth0AndIsSNATedTwice(t *testing.T) {
	top, err := spec.Load("../../topologies/pod-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Derive(top, *top.Walk("D2-secondary"), 40000, "")
	if err != nil {
		t.Fatal(err)
	}
	var nat []string
	for _, h := range e.Hops {
		if h.Point == (Point{"node81", "eth1"}) {
			t.Errorf("pod81's internet traffic must leave eth0 (rule 1024), not eth1: %+v", h)
		}
		if h.NAT != "" {
			nat = append(nat, h.NAT)
		}
		if h.Point == (Point{"server", "eth0"}) && h.Leg == Request && h.Src.String() != "203.0.113.80" {
			t.Errorf("the server must see node81's Elastic IP, saw %s", h.Src)
		}
	}
	if len(nat) != 4 || !strings.Contains(nat[0], "AWS-SNAT-CHAIN-0") || !strings.Contains(nat[1], "203.0.113.80") {
		t.Errorf("NAT steps %q, want the node's SNAT, the gateway's SNAT and both reversals", nat)
	}
	drop, _ := Derive(top, *top.Walk("D2-no-eip"), 40000, "")
	last := drop.Hops[len(drop.Hops)-1]
	if last.Point != (Point{spec.GatewayName, "vpc"}) || last.Leg != Request {
		t.Errorf("without an Elastic IP the flow must end at the gateway, ends at %s", last.Point)
	}
}
