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

// egress is walk D2: a pod (or an instance) sends to an internet host. The
// VPC CNI marks the connection 0x80 (its destination is outside the VPC),
// so rule 1024 sends it out of eth0 even from a secondary ENI, and
// AWS-SNAT-CHAIN-0 rewrites the pod's address to the node's primary IP.
// The VPC router's default route leads to the internet gateway, which
// SNATs the node's IP to its Elastic IP. The reply reverses both.
func (m *model) egress(from, to Endpoint, sport, dport uint16) []Hop {
	inst := from.Instance
	primary := from.IP
	if n := m.t.Node(inst); n != nil {
		primary = n.ENI(0).IP
	}
	public, _ := m.t.PublicIPOf(primary)
	var hops []Hop
	snatPort := sport
	if from.Pod != nil {
		veth := spec.HostVethName(from.Pod.Namespace, from.Pod.Name)
		vmac := spec.HostVethMAC(from.Pod.Namespace, from.Pod.Name)
		hops = append(hops,
			Hop{Leg: Request, Point: Point{from.Object, "eth0"}, Dir: Out, SrcMAC: from.MAC, DstMAC: vmac, Src: from.IP,
				Dst: to.IP, SrcPort: sport, DstPort: dport, Why: from.Object + ": default via 169.254.1.1 dev eth0"},
			Hop{Leg: Request, Point: Point{inst, veth}, Dir: In, SrcMAC: from.MAC, DstMAC: vmac, Src: from.IP,
				Dst: to.IP, SrcPort: sport, DstPort: dport, Why: inst + " receives it on " + veth})
		snatPort = 0 // --random-fully
	}
	node := Endpoint{Object: inst, IP: primary, MAC: spec.ENIMAC(inst, 0), Instance: inst}
	out := m.outbound(Request, node, to, public, snatPort, dport)
	out[0].Why = fmt.Sprintf("%s: AWS-CONNMARK-CHAIN-0 marks it 0x80 (not to %s); rule 1024 fwmark 0x80 lookup main -> default via %s dev eth0",
		inst, m.t.VPC.CIDR, spec.Gateway(m.eniSubnet(inst, 0).CIDR))
	if from.Pod != nil {
		out[0].NAT = fmt.Sprintf("%s SNAT %s -> %s (AWS-SNAT-CHAIN-0, --random-fully)", inst, from.IP, primary)
	}
	hops = append(hops, out...)
	if !public.IsValid() {
		return hops
	}
	hops = append(hops, m.inbound(Reply, to, node, public, dport, snatPort)...)
	if from.Pod != nil {
		veth := spec.HostVethName(from.Pod.Namespace, from.Pod.Name)
		vmac := spec.HostVethMAC(from.Pod.Namespace, from.Pod.Name)
		hops = append(hops,
			Hop{Leg: Reply, Point: Point{inst, veth}, Dir: Out, SrcMAC: vmac, DstMAC: from.MAC, Src: to.IP, Dst: from.IP,
				SrcPort: dport, DstPort: sport, Why: fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s", inst, from.IP, veth),
				NAT: fmt.Sprintf("%s un-SNAT %s -> %s (conntrack)", inst, primary, from.IP)},
			Hop{Leg: Reply, Point: Point{from.Object, "eth0"}, Dir: In, SrcMAC: vmac, DstMAC: from.MAC, Src: to.IP, Dst: from.IP,
				SrcPort: dport, DstPort: sport, Why: from.Object + " receives it on eth0"})
	}
	return hops
}

// outbound is an instance's packet to an internet host: out of its ENI to
// the VPC router, whose default route leads to the internet gateway; the
// gateway SNATs the instance's private address to its public one (or drops
// the packet when it has none) and hands it to the internet.
func (m *model) outbound(leg Leg, from, to Endpoint, public netip.Addr, sport, dport uint16) []Hop {
	sub := m.eniSubnet(from.Instance, from.ENI)
	eni, routerMAC := spec.ENIMAC(from.Instance, from.ENI), spec.RouterMAC(sub.Name)
	var hops []Hop
	add := func(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, src netip.Addr, why string) *Hop {
		hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
			Src: src, Dst: to.IP, SrcPort: sport, DstPort: dport, Why: why})
		return &hops[len(hops)-1]
	}
	priv := from.IP
	add(from.Instance, spec.ENIName(from.ENI), Out, eni, routerMAC, priv,
		fmt.Sprintf("%s: default via %s dev %s", from.Instance, spec.Gateway(sub.CIDR), spec.ENIName(from.ENI)))
	add(spec.RouterName, spec.RouterPortName(from.Instance, from.ENI), In, eni, routerMAC, priv, "addressed to the VPC router")
	add(spec.RouterName, spec.BridgeName(sub.Name), In, eni, routerMAC, priv, "the VPC router routes it")
	add(spec.RouterName, routerGatewayIf, Out, spec.RouterGatewayMAC, spec.GatewayVPCMAC, priv,
		"router: default route to the internet gateway")
	h := add(spec.GatewayName, gatewayVPCIf, In, spec.RouterGatewayMAC, spec.GatewayVPCMAC, priv, "the internet gateway receives it")
	if !public.IsValid() {
		h.Why += fmt.Sprintf("; %s has no Elastic IP, so the gateway has no public address for it: dropped", priv)
		return hops
	}
	h = add(spec.GatewayName, gatewayInternetIf, Out, spec.GatewayInternetMAC, to.MAC, public, "gateway: on-link on the internet LAN")
	h.NAT = fmt.Sprintf("igw SNAT %s -> %s (1:1 NAT to the Elastic IP)", priv, public)
	add(spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), In, spec.GatewayInternetMAC, to.MAC, public,
		"the internet LAN switches it")
	add(spec.InternetName, spec.RouterPortName(to.Object, 0), Out, spec.GatewayInternetMAC, to.MAC, public, "towards "+to.Object)
	add(to.Object, "eth0", In, spec.GatewayInternetMAC, to.MAC, public, to.Object+" sees the public address, never a private one")
	return hops
}

// inbound is an internet host's packet to a public address: through the
// internet router to the gateway, which DNATs it to the private address
// (1:1, or conntrack's reversal of an earlier SNAT), then the VPC router
// delivers it to the ENI that owns that address.
func (m *model) inbound(leg Leg, from, to Endpoint, public netip.Addr, sport, dport uint16) []Hop {
	sub := m.eniSubnet(to.Instance, to.ENI)
	eni, routerMAC := spec.ENIMAC(to.Instance, to.ENI), spec.RouterMAC(sub.Name)
	var hops []Hop
	add := func(obj, iface string, dir Dir, smac, dmac net.HardwareAddr, dst netip.Addr, why string) *Hop {
		hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
			Src: from.IP, Dst: dst, SrcPort: sport, DstPort: dport, Why: why})
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
	h := add(spec.GatewayName, gatewayVPCIf, Out, spec.GatewayVPCMAC, spec.RouterGatewayMAC, to.IP,
		fmt.Sprintf("gateway: %s via the VPC router", m.t.VPC.CIDR))
	h.NAT = fmt.Sprintf("igw DNAT %s -> %s (1:1 NAT of the public address)", public, to.IP)
	add(spec.RouterName, routerGatewayIf, In, spec.GatewayVPCMAC, spec.RouterGatewayMAC, to.IP, "the VPC router receives it")
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
}
