package walk

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/labctl/labctl/lab/spec"
)

// Names in the lab's internet plumbing (see plan/internet.go).
const (
	gatewayVPCIf      = "vpc"
	gatewayInternetIf = "inet"
	routerGatewayIf   = "igw"
	internetBridge    = "br-inet"
)

// egress is walks D2 and D3: a pod (or an instance) sends to an internet
// host. Unless aws-node leaves it alone (external SNAT, or a destination in
// its exclude list), the VPC CNI marks the connection 0x80 (its destination
// is outside the VPC), so rule 1024 sends it out of eth0 even from a
// secondary ENI, and AWS-SNAT-CHAIN-0 rewrites the pod's address to the
// node's primary IP. The VPC router routes it by the route table of the
// subnet it leaves from: to the internet gateway, which SNATs the node's
// IP to its Elastic IP (D2), or to a NAT gateway, which SNATs it to its
// own private IP before the gateway maps that to the NAT gateway's Elastic
// IP (D3). The reply reverses every translation.
func (m *model) egress(from, to Endpoint, sport, dport uint16) []Hop {
	inst := from.Instance
	nodeSNAT := from.Pod != nil && m.t.NodeSNATs(inst, to.IP)
	// What leaves the instance: the node's primary IP on eth0 after SNAT,
	// else the pod's (or host's) own IP on the ENI that owns it.
	src := Endpoint{Object: inst, IP: from.IP, MAC: spec.ENIMAC(inst, from.ENI), Instance: inst, ENI: from.ENI}
	if nodeSNAT {
		src.IP, src.ENI, src.MAC = m.t.Node(inst).ENI(0).IP, 0, spec.ENIMAC(inst, 0)
	}
	var hops []Hop
	leavePort := sport
	if from.Pod != nil {
		veth := spec.HostVethName(from.Pod.Namespace, from.Pod.Name)
		vmac := spec.HostVethMAC(from.Pod.Namespace, from.Pod.Name)
		hops = append(hops,
			Hop{Leg: Request, Point: Point{from.Object, "eth0"}, Dir: Out, SrcMAC: from.MAC, DstMAC: vmac, Src: from.IP,
				Dst: to.IP, SrcPort: sport, DstPort: dport, Why: from.Object + ": default via 169.254.1.1 dev eth0"},
			Hop{Leg: Request, Point: Point{inst, veth}, Dir: In, SrcMAC: from.MAC, DstMAC: vmac, Src: from.IP,
				Dst: to.IP, SrcPort: sport, DstPort: dport, Why: inst + " receives it on " + veth})
		if nodeSNAT {
			leavePort = 0 // --random-fully
		}
	}
	out, ok := m.routeOut(Request, src, to, netip.Addr{}, leavePort, dport)
	sub := m.eniSubnet(inst, src.ENI)
	switch {
	case nodeSNAT:
		marker := "AWS-CONNMARK-CHAIN-0"
		if m.t.VPCCNINFTTable() {
			marker = "table ip aws-cni chain snat-mark" // VPC CNI v1.23+ on nf_tables
		}
		out[0].Why = fmt.Sprintf("%s: %s marks it 0x80 (not to %s); rule 1024 fwmark 0x80 lookup main -> default via %s dev eth0",
			inst, marker, m.t.VPC.CIDR, spec.Gateway(sub.CIDR))
		out[0].NAT = fmt.Sprintf("%s SNAT %s -> %s (AWS-SNAT-CHAIN-0, --random-fully)", inst, from.IP, src.IP)
	case from.Pod != nil && m.t.NodeVPCCNI(inst).ExternalSNAT:
		out[0].Why = fmt.Sprintf("%s: AWS_VPC_K8S_CNI_EXTERNALSNAT=true: no connmark, no SNAT; it leaves %s with the pod's IP (default via %s)",
			inst, spec.ENIName(src.ENI), spec.Gateway(sub.CIDR))
	case from.Pod != nil:
		out[0].Why = fmt.Sprintf("%s: %s is in AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: RETURN in both AWS chains, it leaves %s with the pod's IP (default via %s)",
			inst, to.IP, spec.ENIName(src.ENI), spec.Gateway(sub.CIDR))
	}
	hops = append(hops, out...)
	if !ok {
		return hops
	}
	hops = append(hops, m.inbound(Reply, to, src, netip.Addr{}, dport, leavePort)...)
	if from.Pod != nil {
		veth := spec.HostVethName(from.Pod.Namespace, from.Pod.Name)
		vmac := spec.HostVethMAC(from.Pod.Namespace, from.Pod.Name)
		back := Hop{Leg: Reply, Point: Point{inst, veth}, Dir: Out, SrcMAC: vmac, DstMAC: from.MAC, Src: to.IP, Dst: from.IP,
			SrcPort: dport, DstPort: sport, Why: fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s", inst, from.IP, veth)}
		if nodeSNAT {
			back.NAT = fmt.Sprintf("%s un-SNAT %s -> %s (conntrack)", inst, src.IP, from.IP)
		}
		hops = append(hops, back,
			Hop{Leg: Reply, Point: Point{from.Object, "eth0"}, Dir: In, SrcMAC: vmac, DstMAC: from.MAC, Src: to.IP, Dst: from.IP,
				SrcPort: dport, DstPort: sport, Why: from.Object + " receives it on eth0"})
	}
	return hops
}

// outbound is an instance's packet to an internet host: out of its ENI to
// the VPC router, which routes it by its subnet's route table. To the
// internet gateway: the gateway SNATs the private address to its Elastic
// IP (or drops the packet when it has none). To a NAT gateway: the NAT
// gateway SNATs it to its own private IP and sends it back to the router,
// which routes it by the NAT gateway's subnet's table. No default route:
// the router drops it. A load balancer node's reply passes its public
// address; otherwise it is the Elastic IP of the address that reaches the
// gateway.
func (m *model) outbound(leg Leg, from, to Endpoint, public netip.Addr, sport, dport uint16) []Hop {
	hops, _ := m.routeOut(leg, from, to, public, sport, dport)
	return hops
}

// routeOut is outbound; ok says whether the packet reached the internet host.
func (m *model) routeOut(leg Leg, from, to Endpoint, public netip.Addr, sport, dport uint16) (hops []Hop, ok bool) {
	sub := m.eniSubnet(from.Instance, from.ENI)
	eni, routerMAC := spec.ENIMAC(from.Instance, from.ENI), spec.RouterMAC(sub.Name)
	add := func(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, src netip.Addr, why string) *Hop {
		hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
			Src: src, Dst: to.IP, SrcPort: sport, DstPort: dport, Why: why})
		return &hops[len(hops)-1]
	}
	priv := from.IP
	add(from.Instance, spec.ENIName(from.ENI), Out, eni, routerMAC, priv,
		fmt.Sprintf("%s: default via %s dev %s", from.Instance, spec.Gateway(sub.CIDR), spec.ENIName(from.ENI)))
	add(spec.RouterName, spec.RouterPortName(from.Instance, from.ENI), In, eni, routerMAC, priv, "addressed to the VPC router")
	h := add(spec.RouterName, spec.BridgeName(sub.Name), In, eni, routerMAC, priv, "the VPC router routes it")
	eg := m.t.DefaultRoute(sub.Name)
	if !public.IsValid() {
		public, _ = m.t.PublicIPOf(priv)
	}
	if eg.Kind == spec.EgressNAT {
		n := eg.NAT
		nsub, _ := m.t.Subnet(n.Subnet)
		nmac, nrouter := spec.ENIMAC(n.Name, 0), spec.RouterMAC(nsub.Name)
		h.Why += fmt.Sprintf(": subnet %s's route table %s: 0.0.0.0/0 -> NAT gateway %s", sub.Name, eg.Table, n.Name)
		add(spec.RouterName, spec.BridgeName(nsub.Name), Out, nrouter, nmac, priv, fmt.Sprintf("router: towards %s (%s)", n.Name, n.IP))
		add(spec.RouterName, spec.RouterPortName(n.Name, 0), Out, nrouter, nmac, priv, "towards the NAT gateway's ENI")
		add(n.Name, "eth0", In, nrouter, nmac, priv, n.Name+" receives it")
		sport = 0 // the NAT gateway picks the port (--random-fully)
		h = add(n.Name, "eth0", Out, nmac, nrouter, n.IP, fmt.Sprintf("%s: default via %s dev eth0, back to the router", n.Name, spec.Gateway(nsub.CIDR)))
		h.NAT = fmt.Sprintf("%s SNAT %s -> %s (the NAT gateway's private IP)", n.Name, priv, n.IP)
		add(spec.RouterName, spec.RouterPortName(n.Name, 0), In, nmac, nrouter, n.IP, "addressed to the VPC router")
		h = add(spec.RouterName, spec.BridgeName(nsub.Name), In, nmac, nrouter, n.IP, "the VPC router routes it")
		priv, public, sub, eg = n.IP, n.PublicIP, nsub, m.t.DefaultRoute(nsub.Name)
		if eg.Kind == spec.EgressNAT {
			eg.Kind = spec.EgressNone // a NAT gateway's traffic is not NATed twice by the lab
		}
	}
	if eg.Kind != spec.EgressIGW {
		table := "the main table"
		if eg.Table != "" {
			table = "route table " + eg.Table
		}
		h.Why += fmt.Sprintf("; subnet %s's %s has no route to 0.0.0.0/0 (unreachable): dropped", sub.Name, table)
		return hops, false
	}
	if eg.Table != "" {
		h.Why += fmt.Sprintf(": subnet %s's route table %s: 0.0.0.0/0 -> the internet gateway", sub.Name, eg.Table)
	}
	add(spec.RouterName, routerGatewayIf, Out, spec.RouterGatewayMAC, spec.GatewayVPCMAC, priv,
		"router: default route to the internet gateway")
	h = add(spec.GatewayName, gatewayVPCIf, In, spec.RouterGatewayMAC, spec.GatewayVPCMAC, priv, "the internet gateway receives it")
	if !public.IsValid() {
		h.Why += fmt.Sprintf("; %s has no Elastic IP, so the gateway has no public address for it: dropped", priv)
		return hops, false
	}
	h = add(spec.GatewayName, gatewayInternetIf, Out, spec.GatewayInternetMAC, to.MAC, public, "gateway: on-link on the internet LAN")
	h.NAT = fmt.Sprintf("igw SNAT %s -> %s (1:1 NAT to the Elastic IP)", priv, public)
	add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), In, spec.GatewayInternetMAC, to.MAC, public,
		"the internet LAN switches it")
	add(spec.InternetName, spec.RouterPortName(to.Object, 0), Out, spec.GatewayInternetMAC, to.MAC, public, "towards "+to.Object)
	add(to.Object, "eth0", In, spec.GatewayInternetMAC, to.MAC, public, to.Object+" sees the public address, never a private one")
	return hops, true
}

// inbound is an internet host's reply to an instance's flow: through the
// internet router to the gateway, which DNATs the public address to the
// private one (conntrack's reversal of its SNAT); through the NAT gateway,
// when the instance's subnet routes to one, which reverses its own SNAT;
// then the VPC router delivers it to the ENI that owns the address. A
// packet to a load balancer node passes the node's public address.
func (m *model) inbound(leg Leg, from, to Endpoint, public netip.Addr, sport, dport uint16) []Hop {
	sub := m.eniSubnet(to.Instance, to.ENI)
	eni, routerMAC := spec.ENIMAC(to.Instance, to.ENI), spec.RouterMAC(sub.Name)
	var nat *spec.NATGateway
	if eg := m.t.DefaultRoute(sub.Name); eg.Kind == spec.EgressNAT && !public.IsValid() {
		nat = eg.NAT
	}
	priv := to.IP
	switch {
	case nat != nil:
		priv, public = nat.IP, nat.PublicIP
	case !public.IsValid():
		public, _ = m.t.PublicIPOf(to.IP)
	}
	natPort := dport
	if nat != nil {
		natPort = 0
	}
	var hops []Hop
	add := func(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, dst netip.Addr, why string) *Hop {
		port := dport
		if dst != to.IP {
			port = natPort
		}
		hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
			Src: from.IP, Dst: dst, SrcPort: sport, DstPort: port, Why: why})
		return &hops[len(hops)-1]
	}
	add(from.Object, "eth0", Out, from.MAC, spec.InternetRouterMAC, public, from.Object+": default via the internet router")
	add(spec.InternetName, spec.RouterPortName(from.Object, 0), In, from.MAC, spec.InternetRouterMAC, public, "the internet LAN")
	add(spec.InternetName, internetBridge, In, from.MAC, spec.InternetRouterMAC, public, "the internet router routes it")
	add(spec.InternetName, internetBridge, Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, public,
		fmt.Sprintf("internet router: %s via the gateway", spec.PublicRange))
	add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, public,
		"towards the gateway")
	add(spec.GatewayName, gatewayInternetIf, In, spec.InternetRouterMAC, spec.GatewayInternetMAC, public, "the gateway receives it")
	h := add(spec.GatewayName, gatewayVPCIf, Out, spec.GatewayVPCMAC, spec.RouterGatewayMAC, priv,
		fmt.Sprintf("gateway: %s via the VPC router", m.t.VPC.CIDR))
	h.NAT = fmt.Sprintf("igw DNAT %s -> %s (1:1 NAT of the public address)", public, priv)
	add(spec.RouterName, routerGatewayIf, In, spec.GatewayVPCMAC, spec.RouterGatewayMAC, priv, "the VPC router receives it")
	if nat != nil {
		nsub, _ := m.t.Subnet(nat.Subnet)
		nmac, nrouter := spec.ENIMAC(nat.Name, 0), spec.RouterMAC(nsub.Name)
		add(spec.RouterName, spec.BridgeName(nsub.Name), Out, nrouter, nmac, priv,
			fmt.Sprintf("router: %s is owned by %s eth0", priv, nat.Name))
		add(spec.RouterName, spec.RouterPortName(nat.Name, 0), Out, nrouter, nmac, priv, "towards the NAT gateway's ENI")
		add(nat.Name, "eth0", In, nrouter, nmac, priv, nat.Name+" owns "+priv.String())
		h = add(nat.Name, "eth0", Out, nmac, nrouter, to.IP, fmt.Sprintf("%s: default via %s dev eth0, back to the router", nat.Name, spec.Gateway(nsub.CIDR)))
		h.NAT = fmt.Sprintf("%s un-SNAT %s -> %s (conntrack)", nat.Name, nat.IP, to.IP)
		add(spec.RouterName, spec.RouterPortName(nat.Name, 0), In, nmac, nrouter, to.IP, "addressed to the VPC router")
		add(spec.RouterName, spec.BridgeName(nsub.Name), In, nmac, nrouter, to.IP,
			"the VPC router routes it (the source is on the internet: the main table)")
	}
	add(spec.RouterName, spec.BridgeName(sub.Name), Out, routerMAC, eni, to.IP,
		fmt.Sprintf("router: %s is owned by %s %s", to.IP, to.Instance, spec.ENIName(to.ENI)))
	add(spec.RouterName, spec.RouterPortName(to.Instance, to.ENI), Out, routerMAC, eni, to.IP, "towards the ENI")
	add(to.Instance, spec.ENIName(to.ENI), In, routerMAC, eni, to.IP,
		fmt.Sprintf("%s %s owns %s", to.Instance, spec.ENIName(to.ENI), to.IP))
	return hops
}

// internetPoints are the capture points of the gateway and the internet.
func internetPoints(t *spec.Topology, add func(obj, iface string)) {
	if t.Internet == nil {
		return
	}
	add(spec.RouterName, routerGatewayIf)
	add(spec.GatewayName, gatewayVPCIf)
	add(spec.GatewayName, gatewayInternetIf)
	add(spec.InternetName, internetBridge)
	add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0))
	for _, h := range t.Internet.Hosts {
		add(spec.InternetName, spec.RouterPortName(h.Name, 0))
	}
	for _, n := range t.NATGateways {
		add(spec.RouterName, spec.RouterPortName(n.Name, 0))
		add(n.Name, "eth0")
	}
}
