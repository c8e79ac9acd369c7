package walk

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

// isAPIServer says whether instance is one of the control plane's API
// server instances.
func isAPIServer(instance string) bool {
	return strings.HasPrefix(instance, "eks-api-") && apiIndex(instance) >= 0
}

func apiIndex(instance string) int {
	for i := 0; i < spec.APIServerCount; i++ {
		if spec.APIServerName(i) == instance {
			return i
		}
	}
	return -1
}

// xeniSubnet is the customer subnet of an API server's X-ENI (its eth1).
func (m *model) xeniSubnet(instance string, eni int) (spec.Subnet, bool) {
	if eni != 1 || !isAPIServer(instance) {
		return spec.Subnet{}, false
	}
	x := m.t.XENIOf(apiIndex(instance))
	if x == nil {
		return spec.Subnet{}, false
	}
	return m.t.Subnet(x.Subnet)
}

func xeniWhy(instance string, sub spec.Subnet, direct bool) string {
	if direct {
		return fmt.Sprintf("%s: %s is on-link on eth1, its X-ENI in %s", instance, sub.CIDR, sub.Name)
	}
	return fmt.Sprintf("%s: the VPC's CIDR via %s dev eth1: the API server reaches the cluster's VPC through its X-ENI only",
		instance, spec.Gateway(sub.CIDR))
}

// XENIEndpoint is API server i as the end of a flow: its X-ENI.
func XENIEndpoint(t *spec.Topology, i int) Endpoint {
	name := spec.APIServerName(i)
	return Endpoint{Object: name, IP: t.XENIOf(i).IP, MAC: spec.ENIMAC(name, 1), Instance: name, ENI: 1}
}

// CPTarget is the address a control plane walk's client connects to: an
// X-ENI (private endpoint) or an NLB node's public IP, with the API server
// or NLB node index it belongs to.
type CPTarget struct {
	Addr   netip.Addr
	Index  int
	Public bool
}

// CPTargetOf picks, among the endpoint name's answers, the address a
// client uses: the X-ENI in the client's AZ (or the first), or the first
// NLB node. The answers come from DNS; the walk checks them against the
// topology before it connects.
func CPTargetOf(t *spec.Topology, client string, answers []netip.Addr) (CPTarget, error) {
	if len(answers) == 0 {
		return CPTarget{}, fmt.Errorf("the endpoint name resolved to nothing")
	}
	az := ""
	if n := t.Node(client); n != nil {
		s, _ := t.Subnet(n.ENI(0).Subnet)
		az = s.AZ
	}
	if idx, x := t.XENIInAZ(az); x != nil {
		for _, a := range answers {
			if a == x.IP {
				return CPTarget{Addr: a, Index: idx}, nil
			}
		}
	}
	for i := 0; i < spec.APIServerCount; i++ {
		for _, a := range answers {
			if x := t.XENIOf(i); x != nil && a == x.IP {
				return CPTarget{Addr: a, Index: i}, nil
			}
		}
	}
	for i := 0; i < spec.APIServerCount; i++ {
		for _, a := range answers {
			if a == spec.ControlPlaneNLBPublicIP(i) {
				return CPTarget{Addr: a, Index: i, Public: true}, nil
			}
		}
	}
	return CPTarget{}, fmt.Errorf("the endpoint name resolved to %v, none of them an X-ENI or the NLB's", answers)
}

// CPClient is a control plane walk's client: where it sends from.
func CPClient(t *spec.Topology, w spec.Walk) (Endpoint, error) {
	if i := apiIndex(w.From); i >= 0 {
		if t.XENIOf(i) == nil {
			return Endpoint{}, fmt.Errorf("walk %s: %s has no X-ENI", w.Name, w.From)
		}
		return XENIEndpoint(t, i), nil
	}
	if t.Node(w.From) != nil {
		return nodeEndpoint(t, w.From), nil
	}
	return endpointOf(t, w.From)
}

// ClientIface is the interface the client's packets leave from.
func (e Endpoint) ClientIface() string { return spec.ENIName(e.ENI) }

// DeriveControlPlane is the hops of a control plane walk: CP1 (a node to
// the private endpoint: its X-ENI), CP2 (an internet host to the public
// endpoint: the internet gateway, the NLB, an API server), CP3 (an API
// server to a kubelet through its X-ENI) and CP4 (a node in a private
// subnet to the public endpoint, through its NAT gateway and the internet
// gateway; dropped at the NLB when publicAccessCidrs leave out the NAT
// gateway's Elastic IP).
func DeriveControlPlane(t *spec.Topology, w spec.Walk, sport uint16, target CPTarget) (*Expectation, error) {
	m := &model{t: t}
	from, err := CPClient(t, w)
	if err != nil {
		return nil, err
	}
	e := &Expectation{Walk: w, Proto: "tcp", From: from, ClientPort: sport}
	switch {
	case isAPIServer(w.From): // CP3
		if t.Node(w.To) == nil {
			return nil, fmt.Errorf("walk %s: %q is not a node", w.Name, w.To)
		}
		to := nodeEndpoint(t, w.To)
		e.To = to
		e.Hops = append(m.path(Request, from, to, sport, spec.KubeletPort), m.path(Reply, to, from, spec.KubeletPort, sport)...)
	case !target.Public: // CP1
		to := XENIEndpoint(t, target.Index)
		e.To = to
		e.Hops = append(m.path(Request, from, to, sport, spec.APIServerPort), m.path(Reply, to, from, spec.APIServerPort, sport)...)
	case from.Internet: // CP2
		e.To = nlbEndpoint(target.Index)
		e.Hops = m.internetToNLB(from, target.Index, sport, w.Expect == "drop")
	default: // CP4
		e.To = nlbEndpoint(target.Index)
		hops, err := m.vpcToNLB(from, target.Index, sport, w.Expect == "drop")
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", w.Name, err)
		}
		e.Hops = hops
	}
	e.Points = cpPoints(t, e.Hops)
	return e, nil
}

func nlbEndpoint(i int) Endpoint {
	return Endpoint{Object: spec.ControlPlaneNLBName, IP: spec.ControlPlaneNLBPublicIP(i), MAC: spec.ENIMAC(spec.ControlPlaneNLBName, i),
		Instance: spec.ControlPlaneNLBName, ENI: i, Internet: true}
}

// cpHops builds hops of one leg.
type cpHops struct {
	leg  Leg
	hops []Hop
}

func (c *cpHops) add(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, why string) *Hop {
	c.hops = append(c.hops, Hop{Leg: c.leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
		Src: src, Dst: dst, SrcPort: sport, DstPort: dport, Why: why})
	return &c.hops[len(c.hops)-1]
}

// MACs of the control plane's plumbing (plan/controlplane.go).
var (
	igwCPMAC = spec.ENIMAC(spec.GatewayName, 1)
	cpIGWMAC = spec.RouterPortMAC(spec.ControlPlaneRouterName, 0)
)

func cpRouterMAC(i int) net.HardwareAddr { return spec.RouterMAC(fmt.Sprintf("eks-%d", i)) }

// nlbRequest is the request from the internet gateway's internet side to
// API server i, with the client's public source src (port sport, 0 when
// a NAT picked it). With drop, it ends at the NLB node, which does not
// admit src.
func (m *model) nlbRequest(c *cpHops, src netip.Addr, sport uint16, i int, drop bool) {
	pub, nlbIP, api := spec.ControlPlaneNLBPublicIP(i), spec.ControlPlaneNLBIP(i), spec.APIServerIP(i)
	nlb, apiName := spec.ControlPlaneNLBName, spec.APIServerName(i)
	nlbMAC, apiMAC := spec.ENIMAC(nlb, i), spec.ENIMAC(apiName, 0)
	dev := spec.ENIName(i)
	port := uint16(spec.APIServerPort)
	c.add(spec.GatewayName, gatewayInternetIf, In, spec.InternetRouterMAC, spec.GatewayInternetMAC, src, sport, pub, port,
		"the gateway receives it for the NLB's Elastic IP")
	h := c.add(spec.GatewayName, plan.GatewayControlPlaneIf, Out, igwCPMAC, cpIGWMAC, src, sport, nlbIP, port,
		fmt.Sprintf("gateway: %s via the control plane VPC's router", spec.ControlPlaneCIDR))
	h.NAT = fmt.Sprintf("igw DNAT %s -> %s (1:1 NAT of the NLB node's Elastic IP)", pub, nlbIP)
	c.add(spec.ControlPlaneRouterName, plan.ControlPlaneGatewayIf, In, igwCPMAC, cpIGWMAC, src, sport, nlbIP, port,
		"the AWS-owned VPC's router receives it")
	c.add(spec.ControlPlaneRouterName, plan.ControlPlaneBridge(i), Out, cpRouterMAC(i), nlbMAC, src, sport, nlbIP, port,
		fmt.Sprintf("eks-vpc: %s is the NLB's node in AZ %d", nlbIP, i))
	c.add(spec.ControlPlaneRouterName, spec.RouterPortName(nlb, i), Out, cpRouterMAC(i), nlbMAC, src, sport, nlbIP, port, "towards the NLB's ENI")
	h = c.add(nlb, dev, In, cpRouterMAC(i), nlbMAC, src, sport, nlbIP, port, "the NLB node receives it")
	if drop {
		h.Why += fmt.Sprintf("; %s is not in the endpoint's publicAccessCidrs: dropped here (no answer, no reset)", src)
		return
	}
	h = c.add(nlb, dev, Out, nlbMAC, apiMAC, src, sport, api, port,
		fmt.Sprintf("NLB: to the API server in its AZ (cross-zone off), the client's address kept; %s admits %s", "publicAccessCidrs", src))
	h.NAT = fmt.Sprintf("eks-nlb DNAT %s:443 -> %s:443", nlbIP, api)
	c.add(spec.ControlPlaneRouterName, spec.RouterPortName(nlb, i), In, nlbMAC, apiMAC, src, sport, api, port, "switched on the subnet")
	c.add(spec.ControlPlaneRouterName, spec.RouterPortName(apiName, 0), Out, nlbMAC, apiMAC, src, sport, api, port, "towards the API server")
	c.add(apiName, "eth0", In, nlbMAC, apiMAC, src, sport, api, port, fmt.Sprintf("%s sees the client as %s", apiName, src))
}

// nlbReply is API server i's answer back to the internet gateway's
// internet side, towards dst (dstMAC on the internet LAN).
func (m *model) nlbReply(c *cpHops, dst netip.Addr, dport uint16, i int, dstMAC net.HardwareAddr) {
	pub, nlbIP, api := spec.ControlPlaneNLBPublicIP(i), spec.ControlPlaneNLBIP(i), spec.APIServerIP(i)
	nlb, apiName := spec.ControlPlaneNLBName, spec.APIServerName(i)
	nlbMAC, apiMAC := spec.ENIMAC(nlb, i), spec.ENIMAC(apiName, 0)
	dev := spec.ENIName(i)
	port := uint16(spec.APIServerPort)
	c.add(apiName, "eth0", Out, apiMAC, nlbMAC, api, port, dst, dport,
		fmt.Sprintf("%s: default via %s, the NLB node in its AZ", apiName, nlbIP))
	c.add(spec.ControlPlaneRouterName, spec.RouterPortName(apiName, 0), In, apiMAC, nlbMAC, api, port, dst, dport, "switched on the subnet")
	c.add(spec.ControlPlaneRouterName, spec.RouterPortName(nlb, i), Out, apiMAC, nlbMAC, api, port, dst, dport, "towards the NLB's ENI")
	c.add(nlb, dev, In, apiMAC, nlbMAC, api, port, dst, dport, "the NLB node receives the answer of a flow it forwarded")
	h := c.add(nlb, dev, Out, nlbMAC, cpRouterMAC(i), nlbIP, port, dst, dport,
		fmt.Sprintf("NLB: rule from %s lookup %d: default via %s", nlbIP, 10+i, spec.Gateway(spec.ControlPlaneSubnet(i))))
	h.NAT = fmt.Sprintf("eks-nlb un-DNAT %s -> %s (conntrack)", api, nlbIP)
	c.add(spec.ControlPlaneRouterName, spec.RouterPortName(nlb, i), In, nlbMAC, cpRouterMAC(i), nlbIP, port, dst, dport, "addressed to the router")
	c.add(spec.ControlPlaneRouterName, plan.ControlPlaneBridge(i), In, nlbMAC, cpRouterMAC(i), nlbIP, port, dst, dport, "eks-vpc routes it")
	c.add(spec.ControlPlaneRouterName, plan.ControlPlaneGatewayIf, Out, cpIGWMAC, igwCPMAC, nlbIP, port, dst, dport,
		"eks-vpc: default route to the internet gateway")
	c.add(spec.GatewayName, plan.GatewayControlPlaneIf, In, cpIGWMAC, igwCPMAC, nlbIP, port, dst, dport, "the gateway receives it")
	h = c.add(spec.GatewayName, gatewayInternetIf, Out, spec.GatewayInternetMAC, dstMAC, pub, port, dst, dport, "gateway: out to the internet")
	h.NAT = fmt.Sprintf("igw SNAT %s -> %s (the NLB node's Elastic IP)", nlbIP, pub)
}

// internetToNLB is CP2: an internet host to the public endpoint.
func (m *model) internetToNLB(from Endpoint, i int, sport uint16, drop bool) []Hop {
	pub, port := spec.ControlPlaneNLBPublicIP(i), uint16(spec.APIServerPort)
	req := &cpHops{leg: Request}
	req.add(from.Object, "eth0", Out, from.MAC, spec.InternetRouterMAC, from.IP, sport, pub, port, from.Object+": default via the internet router")
	req.add(spec.InternetName, spec.RouterPortName(from.Object, 0), In, from.MAC, spec.InternetRouterMAC, from.IP, sport, pub, port, "the internet LAN")
	req.add(spec.InternetName, internetBridge, In, from.MAC, spec.InternetRouterMAC, from.IP, sport, pub, port, "the internet router routes it")
	req.add(spec.InternetName, internetBridge, Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, from.IP, sport, pub, port,
		fmt.Sprintf("internet router: %s via the gateway", spec.PublicRange))
	req.add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, from.IP, sport, pub, port,
		"towards the gateway")
	m.nlbRequest(req, from.IP, sport, i, drop)
	if drop {
		return req.hops
	}
	rep := &cpHops{leg: Reply}
	m.nlbReply(rep, from.IP, sport, i, from.MAC)
	rep.add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), In, spec.GatewayInternetMAC, from.MAC, pub, port, from.IP, sport,
		"the internet LAN switches it (the gateway is on-link with the host)")
	rep.add(spec.InternetName, spec.RouterPortName(from.Object, 0), Out, spec.GatewayInternetMAC, from.MAC, pub, port, from.IP, sport, "towards "+from.Object)
	rep.add(from.Object, "eth0", In, spec.GatewayInternetMAC, from.MAC, pub, port, from.IP, sport,
		from.Object+" sees the NLB's Elastic IP answer")
	return append(req.hops, rep.hops...)
}

// hairpin is the internet router sending a packet for the public range
// back to the gateway it came from.
func hairpin(c *cpHops, src netip.Addr, sport uint16, dst netip.Addr, dport uint16) {
	c.add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), In, spec.GatewayInternetMAC, spec.InternetRouterMAC, src, sport, dst, dport,
		"the internet router receives it: a public address of the same gateway")
	c.add(spec.InternetName, internetBridge, In, spec.GatewayInternetMAC, spec.InternetRouterMAC, src, sport, dst, dport, "the internet router routes it")
	c.add(spec.InternetName, internetBridge, Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, src, sport, dst, dport,
		fmt.Sprintf("internet router: %s via the gateway, back where it came from", spec.PublicRange))
	c.add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, src, sport, dst, dport,
		"towards the gateway")
}

// vpcToNLB is CP4: an instance in the VPC to the public endpoint, out
// through its subnet's route (a NAT gateway, then the internet gateway),
// back in through the internet gateway to the NLB.
func (m *model) vpcToNLB(from Endpoint, i int, sport uint16, drop bool) ([]Hop, error) {
	pub, port := spec.ControlPlaneNLBPublicIP(i), uint16(spec.APIServerPort)
	to := Endpoint{Object: spec.ControlPlaneNLBName, IP: pub, MAC: spec.InternetRouterMAC}
	// aws-node's AWS-SNAT-CHAIN-0 also takes the node's own traffic out of
	// the VPC: SNAT to the primary IP it already has, --random-fully, so
	// the port leaving eth0 is not the one the client bound.
	nodeSNAT := from.Node && m.t.NodeSNATs(from.Instance, pub)
	if nodeSNAT {
		sport = 0
	}
	out, ok := m.routeOut(Request, from, to, netip.Addr{}, sport, port)
	if nodeSNAT && len(out) > 0 {
		out[0].NAT = fmt.Sprintf("%s SNAT %s -> %s, a new port (AWS-SNAT-CHAIN-0, --random-fully: %s is outside %s)",
			from.Instance, from.IP, from.IP, pub, m.t.VPC.CIDR)
	}
	cut := -1
	for k, h := range out {
		if h.Point == (Point{spec.GatewayName, gatewayInternetIf}) && h.Dir == Out {
			cut = k
		}
	}
	if !ok || cut < 0 {
		return out, nil // the VPC's routes end before the internet: the derivation says where
	}
	out = out[:cut+1]
	last := out[cut]
	out[cut].Why = "gateway: the public range is routed via the internet router"
	req := &cpHops{leg: Request, hops: out}
	hairpin(req, last.Src, last.SrcPort, pub, port)
	m.nlbRequest(req, last.Src, last.SrcPort, i, drop)
	if drop {
		return req.hops, nil
	}
	rep := &cpHops{leg: Reply}
	m.nlbReply(rep, last.Src, last.SrcPort, i, spec.InternetRouterMAC)
	hairpin(rep, pub, port, last.Src, last.SrcPort)
	in := m.inbound(Reply, Endpoint{Object: spec.ControlPlaneNLBName, IP: pub}, from, netip.Addr{}, port, sport)
	if len(in) < 5 {
		return nil, fmt.Errorf("no way back from the internet gateway to %s", from.Object)
	}
	in = in[5:] // from the gateway's internet side on
	in[0].SrcMAC = spec.InternetRouterMAC
	return append(req.hops, append(rep.hops, in...)...), nil
}

// cpPoints are a control plane walk's capture points: every hop's point,
// every interface of the control plane (so a flow that goes where no hop
// allows is seen), and the X-ENIs' ports on the VPC router.
func cpPoints(t *spec.Topology, hops []Hop) []Point {
	seen := map[Point]bool{}
	for _, h := range hops {
		seen[h.Point] = true
	}
	for i := 0; i < spec.APIServerCount; i++ {
		name := spec.APIServerName(i)
		seen[Point{name, "eth0"}] = true
		seen[Point{spec.ControlPlaneRouterName, spec.RouterPortName(name, 0)}] = true
		if t.XENIOf(i) != nil {
			seen[Point{name, plan.XENIDev}] = true
			seen[Point{spec.RouterName, spec.RouterPortName(name, 1)}] = true
		}
	}
	out := make([]Point, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// ControlPlanePortAZs is PortAZs with the X-ENIs' ports: an API server's
// call to a kubelet in another AZ crosses an AZ like any ENI's traffic.
func ControlPlanePortAZs(t *spec.Topology) map[string]string {
	out := PortAZs(t, nil)
	for i := 0; i < spec.APIServerCount; i++ {
		if x := t.XENIOf(i); x != nil {
			s, _ := t.Subnet(x.Subnet)
			out[spec.RouterPortName(spec.APIServerName(i), 1)] = s.AZ
		}
	}
	return out
}
