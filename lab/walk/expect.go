package walk

import (
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

// Leg says which packet of an exchange a hop is about.
type Leg string

// Legs: the first packet from the client, and the server's first answer.
const (
	Request Leg = "request"
	Reply   Leg = "reply"
)

// Hop is what one capture point must show for one leg of the flow.
type Hop struct {
	Leg    Leg
	Point  Point
	Dir    Dir
	SrcMAC net.HardwareAddr
	DstMAC net.HardwareAddr
	Src    netip.Addr
	Dst    netip.Addr
	// SrcPort and DstPort are checked when non-zero.
	SrcPort, DstPort uint16
	// Why is the decision that put the packet here, in the talk's words.
	Why string
	// NAT names the translation that happened just before this hop, if any.
	NAT string
}

// Expectation is a walk made concrete for one run.
type Expectation struct {
	Walk     spec.Walk
	Proto    string
	From, To Endpoint
	// Endpoint is the pod behind a Service that answered, for Service walks.
	Endpoint *Endpoint
	// LB and LBNode are the load balancer and the node the client used.
	LB     *lb.LoadBalancer
	LBNode lb.Node
	// Hairpin is set when a pod dials an NLB that preserves its address and
	// lands on its own node: the answer never comes back through the NLB.
	Hairpin bool
	// ClientPort is the source port the client binds (TCP and UDP), or the
	// ICMP echo identifier.
	ClientPort uint16
	Hops       []Hop
	// Points is every capture point; a point with no hop for a leg must not
	// see that leg at all ("nothing of this flow is seen on any ENI").
	Points []Point
}

// Endpoint is one end of a flow: a pod or a host, where it sits and its MAC.
type Endpoint struct {
	Object string
	IP     netip.Addr
	MAC    net.HardwareAddr
	Pod    *spec.Pod // nil for a host
	// Instance and ENI own the endpoint's IP in the VPC: the pod's node and
	// ENI, or the host itself and 0.
	Instance string
	ENI      int
	// Node is set when the end is a node itself (its primary IP).
	Node bool
	// Internet is set for a host on the internet, outside the VPC.
	Internet bool
}

// Derive turns a walk of the topology into the hops of one run. The hops
// follow from the ends' roles (node, ENI, subnet) and the VPC CNI's routing,
// not from the address plan, so the same walk holds on any topology. For a
// walk to a Service, endpoint names the pod the kernel picked (the run reads
// it from the capture); it is ignored otherwise.
func Derive(t *spec.Topology, w spec.Walk, clientPort uint16, endpoint string, lbPicks ...Picks) (*Expectation, error) {
	var picks Picks
	if len(lbPicks) > 0 {
		picks = lbPicks[0]
	}
	picks.Endpoint = endpoint
	from, err := endpointOf(t, w.From)
	if err != nil {
		return nil, err
	}
	m := &model{t: t}
	e := &Expectation{Walk: w, Proto: w.Protocol, From: from, ClientPort: clientPort}
	if w.LoadBalancer != "" {
		return deriveLB(t, w, e, picks)
	}
	var sport, dport uint16
	if w.Protocol == "tcp" || w.Protocol == "udp" {
		sport, dport = clientPort, uint16(w.Port)
	}
	svc := ServiceOf(t, w)
	if svc == nil {
		to, err := endpointOf(t, w.To)
		if err != nil {
			return nil, err
		}
		e.To = to
		if to.Internet {
			e.Hops = m.egress(from, to, sport, dport)
		} else {
			e.Hops = append(m.path(Request, from, to, sport, dport), m.path(Reply, to, from, dport, sport)...)
		}
		e.Points = capturePoints(t, from, to)
		return e, nil
	}
	ep, err := endpointOf(t, endpoint)
	if err != nil {
		return nil, fmt.Errorf("walk %s: the endpoint picked: %w", w.Name, err)
	}
	target := uint16(svc.TargetPort(ep.Pod))
	e.To, e.Endpoint = svc.Frontend(t, w), &ep
	ends := []Endpoint{from, ep}
	if w.Via == "" {
		e.Hops = m.clusterIP(svc, from, ep, sport, target)
	} else {
		via := nodeEndpoint(t, w.Via)
		ends = append(ends, via)
		e.Hops = m.nodePort(svc, from, via, ep, sport, target, w.Expect == "drop")
	}
	e.Points = capturePoints(t, ends...)
	return e, nil
}

// nodeEndpoint is a node as the end of a leg: its primary ENI and IP.
func nodeEndpoint(t *spec.Topology, node string) Endpoint {
	n := t.Node(node)
	return Endpoint{Object: node, IP: n.ENI(0).IP, MAC: spec.ENIMAC(node, 0), Instance: node, ENI: 0, Node: true}
}

// clusterIP is B1: the client's node DNATs VIP:port to the endpoint; the
// reply is un-DNATed there, so the client sees the VIP as the source.
func (m *model) clusterIP(svc *Service, from, ep Endpoint, sport, target uint16) []Hop {
	req := m.path(Request, from, ep, sport, target)
	rep := m.path(Reply, ep, from, target, sport)
	node := from.Instance
	for i := range req {
		if i < 2 && from.Pod != nil { // pod eth0 out, host veth in: before PREROUTING's DNAT
			req[i].Dst, req[i].DstPort = svc.IP, svc.Port
			continue
		}
		if i == 2 {
			req[i].NAT = fmt.Sprintf("%s DNAT %s:%d -> %s:%d (%s -> %s -> %s)", node, svc.IP, svc.Port,
				ep.IP, target, svc.dispatch(), svc.SVCChain, svc.SEPChain(ep.IP, target))
		}
	}
	n := len(rep)
	for i := n - 2; i < n && from.Pod != nil; i++ { // host veth out, pod eth0 in: after conntrack's un-DNAT
		rep[i].Src, rep[i].SrcPort = svc.IP, svc.Port
		if i == n-2 {
			rep[i].NAT = fmt.Sprintf("%s un-DNAT %s:%d -> %s:%d (conntrack)", node, ep.IP, target, svc.IP, svc.Port)
		}
	}
	if from.Pod != nil && ep.Object == from.Object {
		// Hairpin: the endpoint is the caller. The KUBE-SEP chain marks
		// traffic from the endpoint's own address for masquerade, so the
		// pod sees the node's address, not its own: MASQUERADE takes an
		// address of the outgoing device, and the host veth has none, so
		// the kernel picks the node's first, eth0's primary IP. The port is
		// rewritten too (--random-fully), so it is not checked.
		nodeIP := nodeEndpoint(m.t, node).IP
		for i := 2; i < len(req); i++ {
			req[i].Src, req[i].SrcPort = nodeIP, 0
		}
		req[2].NAT = fmt.Sprintf("%s DNAT %s:%d -> %s:%d (%s -> %s -> %s); the source is the endpoint itself, "+
			"%s to %s (hairpin)", node, svc.IP, svc.Port,
			ep.IP, target, svc.dispatch(), svc.SVCChain, svc.SEPChain(ep.IP, target), svc.hairpinNote(), nodeIP)
		for i := 0; i < n-2; i++ {
			rep[i].Dst, rep[i].DstPort = nodeIP, 0
		}
		rep[n-2].NAT = fmt.Sprintf("%s un-SNAT and un-DNAT %s:%d -> %s:%d (conntrack)", node, ep.IP, target, svc.IP, svc.Port)
	}
	return append(req, rep...)
}

// nodePort is B3 and the Local policy: the client reaches via's primary IP
// on the NodePort; via DNATs, and SNATs to its own IP unless the policy is
// Local. With drop, via has no local endpoint and the flow ends at via.
func (m *model) nodePort(svc *Service, from, via, ep Endpoint, sport, target uint16, drop bool) []Hop {
	hops := m.path(Request, from, via, sport, svc.NodePort)
	if drop {
		hops[len(hops)-1].Why += "; " + svc.localDropNote()
		return hops
	}
	return append(hops, m.viaNode(svc, from, via, ep, sport, target, from)...)
}

// forward is a node sending a packet on: to a local pod through its veth,
// or out of an ENI by the main table (the node's own traffic and connmarked
// replies). src is the packet's source after any SNAT.
func (m *model) forward(leg Leg, node Endpoint, src netip.Addr, to Endpoint, sport, dport uint16) []Hop {
	if to.Pod != nil && to.Instance == node.Instance {
		var hops []Hop
		m.deliverToPod(func(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, why string) {
			hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
				Src: src, Dst: to.IP, SrcPort: sport, DstPort: dport, Why: why})
		}, to, fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s", node.Object, to.IP,
			spec.HostVethName(to.Pod.Namespace, to.Pod.Name)))
		return hops
	}
	sender := node
	sender.IP = src
	return m.path(leg, sender, to, sport, dport)
}

// EndpointOf is a pod, host or internet host as a walk end.
func EndpointOf(t *spec.Topology, name string) (Endpoint, error) { return endpointOf(t, name) }

func endpointOf(t *spec.Topology, name string) (Endpoint, error) {
	if p := t.Pod(name); p != nil {
		return Endpoint{Object: p.Name, IP: p.IP, MAC: spec.PodMAC(p.Namespace, p.Name), Pod: p,
			Instance: p.Node, ENI: p.ENI}, nil
	}
	if h := t.Host(name); h != nil {
		return Endpoint{Object: h.Name, IP: h.IP, MAC: spec.ENIMAC(h.Name, 0), Instance: h.Name}, nil
	}
	if h := t.InternetHost(name); h != nil {
		return Endpoint{Object: h.Name, IP: h.IP, MAC: spec.ENIMAC(h.Name, 0), Instance: h.Name, Internet: true}, nil
	}
	return Endpoint{}, fmt.Errorf("walk end %q is not a pod or host", name)
}

type model struct {
	t   *spec.Topology
	lbs *lb.Model
}

// eniSubnet returns the subnet of an instance's ENI.
func (m *model) eniSubnet(instance string, eni int) spec.Subnet {
	if n := m.t.Node(instance); n != nil {
		s, _ := m.t.Subnet(n.ENI(eni).Subnet)
		return s
	}
	if h := m.t.Host(instance); h != nil {
		s, _ := m.t.Subnet(h.Subnet)
		return s
	}
	if m.lbs != nil {
		for _, l := range m.lbs.LBs {
			if l.Name == instance {
				return l.Nodes[eni].Subnet
			}
		}
	}
	if s, ok := m.xeniSubnet(instance, eni); ok {
		return s
	}
	panic("walk: no subnet for " + instance)
}

func (m *model) isLB(name string) bool {
	if m.lbs == nil {
		return false
	}
	for _, l := range m.lbs.LBs {
		if l.Name == name {
			return true
		}
	}
	return false
}

// path is the hops of one packet from a to b, with a's address as source.
func (m *model) path(leg Leg, a, b Endpoint, sport, dport uint16) []Hop {
	var hops []Hop
	hop := func(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, why string) {
		hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
			Src: a.IP, Dst: b.IP, SrcPort: sport, DstPort: dport, Why: why})
	}
	if a.Node && a.Pod == nil && b.Pod != nil && !b.Node && b.Instance == a.Instance {
		// A node to a pod of its own: over the pod's veth only.
		m.deliverToPod(hop, b, fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s",
			a.Instance, b.IP, spec.HostVethName(b.Pod.Namespace, b.Pod.Name)))
		return hops
	}
	if a.Pod != nil && !a.Node {
		veth := spec.HostVethName(a.Pod.Namespace, a.Pod.Name)
		vmac := spec.HostVethMAC(a.Pod.Namespace, a.Pod.Name)
		hop(a.Object, "eth0", Out, a.MAC, vmac,
			fmt.Sprintf("%s: default via %s dev eth0, static ARP to the host veth's MAC", a.Object, spec.PodGateway))
		hop(a.Instance, veth, In, a.MAC, vmac, fmt.Sprintf("%s receives it on %s", a.Instance, veth))
		switch {
		case b.Pod != nil && !b.Node && b.Instance == a.Instance:
			m.deliverToPod(hop, b, fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s",
				a.Instance, b.IP, spec.HostVethName(b.Pod.Namespace, b.Pod.Name)))
			return hops
		case b.Node && b.Instance == a.Instance:
			return hops // the pod's own node: delivered locally
		}
	}
	// The sender's instance picks an ENI and a next hop.
	egress := a.ENI
	sub := m.eniSubnet(a.Instance, egress)
	gw := spec.Gateway(sub.CIDR)
	// A load balancer node's traffic always takes its ENI's own table,
	// default via the subnet's router, even to its own subnet (plan's rules
	// "from <node IP> lookup 10+k" and "iif ethk lookup 10+k").
	direct := (egress == 0 || isAPIServer(a.Instance)) && sub.CIDR.Contains(b.IP) && !m.isLB(a.Instance)
	var why string
	switch {
	case a.Pod != nil && egress != 0:
		why = fmt.Sprintf("%s: rule 1536 from %s lookup %d -> default via %s dev %s",
			a.Instance, a.IP, spec.RouteTable(egress), gw, spec.ENIName(egress))
	case direct:
		why = fmt.Sprintf("%s: main %s dev eth0 (on-link, no router)", a.Instance, sub.CIDR)
	default:
		why = fmt.Sprintf("%s: main default via %s dev eth0", a.Instance, gw)
	}
	ethA := spec.ENIName(egress)
	srcMAC := spec.ENIMAC(a.Instance, egress)
	ownerMAC := spec.ENIMAC(b.Instance, b.ENI)
	if m.isLB(a.Instance) {
		why = fmt.Sprintf("%s: leaves %s, the ENI of its %s node (its own route table)", a.Instance, ethA, sub.AZ)
	} else if a.Node && a.Pod == nil {
		why = fmt.Sprintf("%s routes it by main: %s", a.Instance, map[bool]string{true: "on-link on eth0",
			false: "default via " + gw.String() + " dev eth0"}[direct])
	}
	if isAPIServer(a.Instance) {
		why = xeniWhy(a.Instance, sub, direct)
	}
	ownerPort := spec.RouterPortName(b.Instance, b.ENI)
	routerMAC := spec.RouterMAC(sub.Name)
	if direct {
		hop(a.Instance, ethA, Out, srcMAC, ownerMAC, why)
		hop(spec.RouterName, spec.RouterPortName(a.Instance, egress), In, srcMAC, ownerMAC,
			"the VPC delivers it to the ENI that owns "+b.IP.String())
		hop(spec.RouterName, ownerPort, Out, srcMAC, ownerMAC, "switched, not routed: the router's IP layer never sees it")
	} else {
		dsub := m.eniSubnet(b.Instance, b.ENI)
		outMAC := spec.RouterMAC(dsub.Name)
		hop(a.Instance, ethA, Out, srcMAC, routerMAC, why)
		hop(spec.RouterName, spec.RouterPortName(a.Instance, egress), In, srcMAC, routerMAC,
			"addressed to the VPC router's MAC")
		hop(spec.RouterName, spec.BridgeName(sub.Name), In, srcMAC, routerMAC, "the VPC router routes it")
		hop(spec.RouterName, spec.BridgeName(dsub.Name), Out, outMAC, ownerMAC,
			fmt.Sprintf("router: %s is in %s, owned by %s %s (no ICMP redirect)", b.IP, dsub.CIDR, b.Instance,
				spec.ENIName(b.ENI)))
		hop(spec.RouterName, ownerPort, Out, outMAC, ownerMAC, "towards the owning ENI")
		srcMAC = outMAC
	}
	owns := fmt.Sprintf("%s %s owns %s", b.Instance, spec.ENIName(b.ENI), b.IP)
	if m.isLB(b.Instance) && leg == Reply {
		owns = fmt.Sprintf("%s %s: the reply of a flow this node forwarded comes back to it", b.Instance, spec.ENIName(b.ENI))
	}
	hop(b.Instance, spec.ENIName(b.ENI), In, srcMAC, ownerMAC, owns)
	if b.Pod != nil && !b.Node {
		m.deliverToPod(hop, b, fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s", b.Instance, b.IP,
			spec.HostVethName(b.Pod.Namespace, b.Pod.Name)))
	}
	return hops
}

func (m *model) deliverToPod(hop func(string, string, Dir, net.HardwareAddr, net.HardwareAddr, string), b Endpoint, why string) {
	veth := spec.HostVethName(b.Pod.Namespace, b.Pod.Name)
	vmac := spec.HostVethMAC(b.Pod.Namespace, b.Pod.Name)
	hop(b.Instance, veth, Out, vmac, b.MAC, why)
	hop(b.Object, "eth0", In, vmac, b.MAC, b.Object+" receives it on eth0")
}

// capturePoints is every interface of the ends, their instances and the VPC
// router: where a walk listens, and where the flow must not show up unless a
// hop says so.
func capturePoints(t *spec.Topology, ends ...Endpoint) []Point {
	seen := map[Point]bool{}
	add := func(obj, iface string) { seen[Point{obj, iface}] = true }
	for _, s := range t.Subnets() {
		add(spec.RouterName, spec.BridgeName(s.Name))
	}
	for _, n := range t.Nodes {
		for _, e := range n.ENIs {
			add(spec.RouterName, spec.RouterPortName(n.Name, *e.Index))
		}
	}
	for _, h := range t.Hosts {
		add(spec.RouterName, spec.RouterPortName(h.Name, 0))
	}
	internetPoints(t, add)
	for _, e := range ends {
		add(e.Object, "eth0")
		n := t.Node(e.Instance)
		if n == nil {
			continue
		}
		for _, eni := range n.ENIs {
			add(n.Name, spec.ENIName(*eni.Index))
		}
		for _, p := range t.Pods {
			if p.Node == n.Name {
				add(n.Name, spec.HostVethName(p.Namespace, p.Name))
			}
		}
	}
	out := make([]Point, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
