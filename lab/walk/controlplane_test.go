package walk

import (
	"net/netip"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func cpTopo(t *testing.T, file string) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func walkNamed(t *testing.T, top *spec.Topology, name string) spec.Walk {
	t.Helper()
	for _, w := range top.Walks {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no walk %s", name)
	return spec.Walk{}
}

func lastHop(hops []Hop, leg Leg) Hop {
	var h Hop
	for _, x := range hops {
		if x.Leg == leg {
			h = x
		}
	}
	return h
}

func TestNodeUsesTheXENIInItsOwnAZ(t *testing.T) {
	top := cpTopo(t, "control-plane.yaml")
	answers := top.EndpointAddrs(true)
	for node, want := range map[string]string{"node11": "192.168.1.100", "node21": "192.168.11.100"} {
		tg, err := CPTargetOf(top, node, answers)
		if err != nil || tg.Public || tg.Addr.String() != want {
			t.Errorf("%s picks %+v (%v), want the X-ENI %s in its AZ", node, tg, err, want)
		}
	}
	if _, err := CPTargetOf(top, "node11", []netip.Addr{netip.MustParseAddr("192.0.2.99")}); err == nil {
		t.Error("an answer that is no X-ENI and no NLB node was accepted")
	}
}

func TestCP1EndsAtTheXENIAndComesBackFromIt(t *testing.T) {
	top := cpTopo(t, "control-plane.yaml")
	tg, _ := CPTargetOf(top, "node11", top.EndpointAddrs(true))
	e, err := DeriveControlPlane(top, walkNamed(t, top, "CP1"), 40000, tg)
	if err != nil {
		t.Fatal(err)
	}
	req, rep := lastHop(e.Hops, Request), lastHop(e.Hops, Reply)
	if req.Point != (Point{"eks-api-0", "eth1"}) || req.Dst.String() != "192.168.1.100" || req.DstPort != 443 {
		t.Errorf("request ends at %v %v:%d, want eks-api-0/eth1 (the X-ENI) on 443", req.Point, req.Dst, req.DstPort)
	}
	if rep.Point != (Point{"node11", "eth0"}) || rep.Src.String() != "192.168.1.100" {
		t.Errorf("reply ends at %v from %v, want node11/eth0 from the X-ENI", rep.Point, rep.Src)
	}
	for _, h := range e.Hops {
		if h.Point.Object == spec.ControlPlaneRouterName || h.Point.Object == spec.ControlPlaneNLBName {
			t.Errorf("the private endpoint's flow passes %v", h.Point)
		}
	}
}

func TestCP2KeepsTheClientAddressThroughTheNLB(t *testing.T) {
	top := cpTopo(t, "control-plane.yaml")
	tg, _ := CPTargetOf(top, "laptop", top.EndpointAddrs(false))
	if !tg.Public || tg.Addr != spec.ControlPlaneNLBPublicIP(0) {
		t.Fatalf("laptop picks %+v, want the first NLB node's Elastic IP", tg)
	}
	e, err := DeriveControlPlane(top, walkNamed(t, top, "CP2"), 40000, tg)
	if err != nil {
		t.Fatal(err)
	}
	req := lastHop(e.Hops, Request)
	if req.Point != (Point{"eks-api-0", "eth0"}) || req.Src.String() != "198.51.100.10" || req.Dst != spec.APIServerIP(0) {
		t.Errorf("the API server receives %v > %v at %v, want the laptop's address at eks-api-0/eth0", req.Src, req.Dst, req.Point)
	}
	rep := lastHop(e.Hops, Reply)
	if rep.Point != (Point{"laptop", "eth0"}) || rep.Src != spec.ControlPlaneNLBPublicIP(0) {
		t.Errorf("the laptop gets its answer at %v from %v, want from the NLB's Elastic IP", rep.Point, rep.Src)
	}
	var viaNLB bool
	for _, h := range e.Hops {
		viaNLB = viaNLB || (h.Leg == Reply && h.Point == Point{spec.ControlPlaneNLBName, "eth0"} && h.Dir == Out && h.Src == spec.ControlPlaneNLBIP(0))
	}
	if !viaNLB {
		t.Error("the reply does not pass back through the NLB, which must undo its DNAT")
	}
}

func TestCP3LeavesThroughTheXENI(t *testing.T) {
	top := cpTopo(t, "control-plane.yaml")
	e, err := DeriveControlPlane(top, walkNamed(t, top, "CP3"), 40000, CPTarget{})
	if err != nil {
		t.Fatal(err)
	}
	first, req := e.Hops[0], lastHop(e.Hops, Request)
	if first.Point != (Point{"eks-api-1", "eth1"}) || first.Dir != Out {
		t.Errorf("first hop %v %s, want out of eks-api-1/eth1, the X-ENI", first.Point, first.Dir)
	}
	if req.Point != (Point{"node11", "eth0"}) || req.Src.String() != "192.168.11.100" || req.DstPort != spec.KubeletPort {
		t.Errorf("the kubelet receives %v:%d at %v, want from the X-ENI 192.168.11.100 on 10250", req.Src, req.DstPort, req.Point)
	}
}

func TestCP4DeniedStopsAtTheNLBAndCP4PassesTheNATGateway(t *testing.T) {
	top := cpTopo(t, "control-plane-public.yaml")
	tg, _ := CPTargetOf(top, "node21", top.EndpointAddrs(true))
	if !tg.Public {
		t.Fatalf("with private access off, node21 picks %+v; want the public endpoint", tg)
	}
	e, err := DeriveControlPlane(top, walkNamed(t, top, "CP4-denied"), 40000, tg)
	if err != nil {
		t.Fatal(err)
	}
	last := e.Hops[len(e.Hops)-1]
	if last.Point != (Point{spec.ControlPlaneNLBName, "eth0"}) || last.Dir != In || last.Src.String() != "203.0.113.20" {
		t.Errorf("the denied flow ends at %v %s from %v, want into eks-nlb/eth0 from nat-b's Elastic IP", last.Point, last.Dir, last.Src)
	}
	if lastHop(e.Hops, Reply).Point != (Point{}) {
		t.Error("a denied flow has reply hops")
	}
	e, err = DeriveControlPlane(top, walkNamed(t, top, "CP4"), 40000, tg)
	if err != nil {
		t.Fatal(err)
	}
	var nat, seen bool
	for _, h := range e.Hops {
		nat = nat || (h.Point == Point{"nat-a", "eth0"} && h.Dir == Out && h.Leg == Request)
		seen = seen || (h.Point == Point{"eks-api-0", "eth0"} && h.Leg == Request && h.Src.String() == "203.0.113.10")
	}
	if !nat || !seen {
		t.Errorf("CP4: through nat-a %v, API server sees nat-a's Elastic IP %v; want both", nat, seen)
	}
	if rep := lastHop(e.Hops, Reply); rep.Point != (Point{"node11", "eth0"}) {
		t.Errorf("CP4's answer ends at %v, want node11/eth0", rep.Point)
	}
}
