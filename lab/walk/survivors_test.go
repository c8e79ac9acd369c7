package walk

import (
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/labctl/labctl/lab/spec"
)

// A pod-to-pod walk listens on every interface of both ends' nodes,
// including the veths of pods that take no part (a flow leaking onto
// pod61's veth must be seen to be caught), every router port and bridge,
// and nothing on node81, which is neither end's node.
func TestPodWalkListensOnEveryVethAndENIOfTheEndsNodesAndEveryRouterPort(t *testing.T) {
	e := derive(t, "A2") // pod51 (node51) to pod71 (node71)
	var got []string
	for _, p := range e.Points {
		got = append(got, p.String())
	}
	veth := func(node, pod string) string { return node + "/" + spec.HostVethName("default", pod) }
	want := []string{
		"node51/eth0", "node51/eth1", veth("node51", "pod51"), veth("node51", "pod61"),
		"node71/eth0", veth("node71", "pod71"),
		"pod51/eth0", "pod71/eth0",
		"vpc/br-a", "vpc/br-b",
		"vpc/client.eth0", "vpc/node51.eth0", "vpc/node51.eth1", "vpc/node71.eth0", "vpc/node81.eth0", "vpc/node81.eth1",
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("capture points of A2:\n got  %v\n want %v", got, want)
	}
}

// stateFor is a pod51/node51 snapshot as the VPC CNI leaves it; other
// objects have none, so only pod51's checks are looked at.
func stateFor(t *testing.T, top *spec.Topology, permanent bool, mac string) map[string]*NSState {
	t.Helper()
	p := top.Pod("pod51")
	if p == nil {
		t.Fatal("no pod51")
	}
	veth := spec.HostVethName(p.Namespace, p.Name)
	vmac := spec.HostVethMAC(p.Namespace, p.Name)
	nmac := vmac
	if mac != "" {
		var err error
		if nmac, err = net.ParseMAC(mac); err != nil {
			t.Fatal(err)
		}
	}
	pod := &NSState{Object: "pod51", Links: map[string]LinkState{"eth0": {Name: "eth0", MTU: top.VPC.MTU, Up: true}},
		Addrs:  []AddrState{{Dev: "eth0", Prefix: netip.PrefixFrom(p.IP, 32)}},
		Neighs: []NeighState{{Dev: "eth0", IP: spec.PodGateway, MAC: nmac, Permanent: permanent}}}
	node := &NSState{Object: "node51", Links: map[string]LinkState{veth: {Name: veth, MAC: vmac, MTU: top.VPC.MTU, Up: true}}}
	return map[string]*NSState{"pod51": pod, "node51": node}
}

func gatewayNeighCheck(t *testing.T, r *StateReport) StateCheck {
	t.Helper()
	for _, c := range r.Checks {
		if c.Object == "pod51" && strings.HasPrefix(c.What, "169.254.1.1 PERMANENT") {
			return c
		}
	}
	t.Fatalf("no check of pod51's 169.254.1.1 neighbour entry in %+v", r.Checks)
	return StateCheck{}
}

// A0 needs pod51's entry for 169.254.1.1 to be PERMANENT with the host
// veth's MAC (the VPC CNI's static ARP entry): a learned (REACHABLE, STALE)
// entry or another MAC fails it.
func TestA0FailsANeighbourEntryThatIsNotPermanentOrHasTheWrongMAC(t *testing.T) {
	top := topo(t)
	if c := gatewayNeighCheck(t, CheckState(top, stateFor(t, top, true, ""))); !c.OK {
		t.Fatalf("a PERMANENT entry with the veth's MAC fails: %+v", c)
	}
	r := CheckState(top, stateFor(t, top, false, ""))
	if c := gatewayNeighCheck(t, r); c.OK || !strings.Contains(c.Got, "permanent=false") {
		t.Errorf("a learned entry passes: %+v", c)
	}
	if r.Passed() {
		t.Error("the report passes with a learned entry")
	}
	if c := gatewayNeighCheck(t, CheckState(top, stateFor(t, top, true, "02:00:00:00:00:01"))); c.OK {
		t.Errorf("a PERMANENT entry with another MAC passes: %+v", c)
	}
}

// Every header field a hop names is compared: a packet that differs from
// the hop in any one of them is a mismatch naming that field.
func TestAHopIsAMismatchWhenAnyOneHeaderFieldDiffers(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	h := Hop{Leg: Request, Point: Point{"node51", "eth0"}, Dir: Out, SrcMAC: mac("02:00:00:00:00:01"), DstMAC: mac("02:00:00:00:00:02"),
		Src: netip.MustParseAddr("192.168.1.51"), Dst: netip.MustParseAddr("192.168.1.71"), SrcPort: 40000, DstPort: 80}
	good := Packet{Point: h.Point, Dir: h.Dir, Proto: "tcp", SrcMAC: h.SrcMAC, DstMAC: h.DstMAC, Src: h.Src, Dst: h.Dst,
		SrcPort: h.SrcPort, DstPort: h.DstPort}
	if r := judge(h, []*Packet{&good}); r.Verdict != OK {
		t.Fatalf("the hop's own packet: %s %v", r.Verdict, r.Diffs)
	}
	for _, tc := range []struct {
		field  string
		change func(p *Packet)
	}{
		{"src MAC", func(p *Packet) { p.SrcMAC = mac("02:00:00:00:00:09") }},
		{"dst MAC", func(p *Packet) { p.DstMAC = mac("02:00:00:00:00:09") }},
		{"src IP", func(p *Packet) { p.Src = netip.MustParseAddr("192.168.1.50") }},
		{"dst IP", func(p *Packet) { p.Dst = netip.MustParseAddr("10.100.0.100") }},
		{"src port", func(p *Packet) { p.SrcPort = 1 }},
		{"dst port", func(p *Packet) { p.DstPort = 8080 }},
	} {
		p := good
		tc.change(&p)
		r := judge(h, []*Packet{&p})
		if r.Verdict != Mismatch || len(r.Diffs) != 1 || !strings.HasPrefix(r.Diffs[0], tc.field+" ") {
			t.Errorf("%s differs: verdict %s, diffs %v", tc.field, r.Verdict, r.Diffs)
		}
	}
}

// The VPC router never sends an ICMP redirect: one anywhere in a capture
// fails a walk whose hops all matched.
func TestAnICMPRedirectAnywhereFailsTheWalk(t *testing.T) {
	e := derive(t, "A3")
	c := &Classifier{Proto: "icmp", Token: []byte("tok")}
	pk := perfect(e, "tok")
	redirect := Packet{Point: Point{spec.RouterName, "br-a"}, Dir: Out, Proto: "icmp", ICMPType: layers.ICMPv4TypeRedirect,
		Src: netip.MustParseAddr("192.168.1.1"), Dst: netip.MustParseAddr("192.168.1.51")}
	r := Check(e, c, append(pk, redirect))
	if r.Passed() || len(r.Unexpected) != 1 || !strings.Contains(r.Unexpected[0].Why, "ICMP redirect") {
		t.Errorf("a redirect in the capture: passed %v, unexpected %+v", r.Passed(), r.Unexpected)
	}
}

// An instance-target NLB keeps the client's address by default, and with
// preserve_client_ip.enabled=false SNATs to its node's: the target node
// sees the one or the other on the request as it arrives on its eth0.
func TestNLBWalkExpectsTheClientOrTheNLBNodeAsTheTargetsSource(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		top, err := spec.Load("../../topologies/nlb-instance.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !preserve {
			for _, s := range top.Manifests.Services {
				if s.Name == "web" {
					s.Annotations["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"] = "preserve_client_ip.enabled=false"
				}
			}
		}
		e, err := Derive(top, *top.Walk("C1-b"), 40000, "", Picks{Target: "node71", Endpoint: "pod71"})
		if err != nil {
			t.Fatal(err)
		}
		want := top.Host("client").IP
		if !preserve {
			want = e.LBNode.IP
		}
		found := false
		for _, h := range e.Hops {
			if h.Leg == Request && h.Point == (Point{"node71", "eth0"}) && h.Dir == In {
				found = true
				if h.Src != want {
					t.Errorf("preserve %v: node71 gets the request from %s, want %s", preserve, h.Src, want)
				}
			}
		}
		if !found {
			t.Errorf("preserve %v: no request hop into node71/eth0", preserve)
		}
	}
}
