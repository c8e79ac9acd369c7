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
	sub := m.eniSubnet(inst, 0)
	gw := spec.Gateway(sub.CIDR)
	eniMAC, routerMAC := spec.ENIMAC(inst, 0), spec.RouterMAC(sub.Name)
	port := spec.RouterPortName(inst, 0)
	var hops []Hop
	add := func(leg Leg, obj, iface string, dir Dir, smac, dmac net.HardwareAddr, src, dst netip.Addr, sp, dp uint16, why string) *Hop {
		hops = append(hops, Hop{Leg: leg, Point: Point{obj, iface}, Dir: dir, SrcMAC: smac, DstMAC: dmac,
			Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Why: why})
		return &hops[len(hops)-1]
	}
	snatPort := sport
	if from.Pod != nil {
		veth := spec.HostVethName(from.Pod.Namespace, from.Pod.Name)
		vmac := spec.HostVethMAC(from.Pod.Namespace, from.Pod.Name)
		add(Request, from.Object, "eth0", Out, from.MAC, vmac, from.IP, to.IP, sport, dport,
			from.Object+": default via 169.254.1.1 dev eth0")
		add(Request, inst, veth, In, from.MAC, vmac, from.IP, to.IP, sport, dport, inst+" receives it on "+veth)
		snatPort = 0 // --random-fully
	}
	h := add(Request, inst, "eth0", Out, eniMAC, routerMAC, primary, to.IP, snatPort, dport,
		fmt.Sprintf("%s: AWS-CONNMARK-CHAIN-0 marks it 0x80 (not to %s); rule 1024 fwmark 0x80 lookup main -> default via %s dev eth0",
			inst, m.t.VPC.CIDR, gw))
	if from.Pod != nil {
		h.NAT = fmt.Sprintf("%s SNAT %s -> %s (AWS-SNAT-CHAIN-0, --random-fully)", inst, from.IP, primary)
	}
	add(Request, spec.RouterName, port, In, eniMAC, routerMAC, primary, to.IP, snatPort, dport, "addressed to the VPC router")
	add(Request, spec.RouterName, spec.BridgeName(sub.Name), In, eniMAC, routerMAC, primary, to.IP, snatPort, dport,
		"the VPC router routes it")
	add(Request, spec.RouterName, routerGatewayIf, Out, spec.RouterGatewayMAC, spec.GatewayVPCMAC, primary, to.IP, snatPort, dport,
		"router: default route to the internet gateway")
	h = add(Request, spec.GatewayName, gatewayVPCIf, In, spec.RouterGatewayMAC, spec.GatewayVPCMAC, primary, to.IP, snatPort, dport,
		"the internet gateway receives it")
	if !public.IsValid() {
		h.Why += fmt.Sprintf("; %s has no Elastic IP, so the gateway has no public address for it: dropped", primary)
		return hops
	}
	h = add(Request, spec.GatewayName, gatewayInternetIf, Out, spec.GatewayInternetMAC, to.MAC, public, to.IP, snatPort, dport,
		"gateway: on-link on the internet LAN")
	h.NAT = fmt.Sprintf("igw SNAT %s -> %s (1:1 NAT to the Elastic IP)", primary, public)
	add(Request, spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), In, spec.GatewayInternetMAC, to.MAC, public, to.IP,
		snatPort, dport, "the internet LAN switches it")
	add(Request, spec.InternetName, spec.RouterPortName(to.Object, 0), Out, spec.GatewayInternetMAC, to.MAC, public, to.IP,
		snatPort, dport, "towards "+to.Object)
	add(Request, to.Object, "eth0", In, spec.GatewayInternetMAC, to.MAC, public, to.IP, snatPort, dport,
		to.Object+" sees the Elastic IP, never the node's or the pod's address")

	add(Reply, to.Object, "eth0", Out, to.MAC, spec.InternetRouterMAC, to.IP, public, dport, snatPort,
		to.Object+": default via the internet router")
	add(Reply, spec.InternetName, spec.RouterPortName(to.Object, 0), In, to.MAC, spec.InternetRouterMAC, to.IP, public, dport, snatPort,
		"the internet LAN")
	add(Reply, spec.InternetName, internetBridge, In, to.MAC, spec.InternetRouterMAC, to.IP, public, dport, snatPort,
		"the internet router routes it")
	add(Reply, spec.InternetName, internetBridge, Out, spec.InternetRouterMAC, spec.GatewayInternetMAC, to.IP, public, dport, snatPort,
		fmt.Sprintf("internet router: %s via the gateway", spec.PublicRange))
	add(Reply, spec.InternetName, spec.RouterPortName(spec.GatewayName, 0), Out, spec.InternetRouterMAC, spec.GatewayInternetMAC,
		to.IP, public, dport, snatPort, "towards the gateway")
	add(Reply, spec.GatewayName, gatewayInternetIf, In, spec.InternetRouterMAC, spec.GatewayInternetMAC, to.IP, public, dport, snatPort,
		"the gateway receives it")
	h = add(Reply, spec.GatewayName, gatewayVPCIf, Out, spec.GatewayVPCMAC, spec.RouterGatewayMAC, to.IP, primary, dport, snatPort,
		fmt.Sprintf("gateway: %s via the VPC router", m.t.VPC.CIDR))
	h.NAT = fmt.Sprintf("igw un-SNAT %s -> %s (conntrack)", public, primary)
	add(Reply, spec.RouterName, routerGatewayIf, In, spec.GatewayVPCMAC, spec.RouterGatewayMAC, to.IP, primary, dport, snatPort,
		"the VPC router receives it")
	add(Reply, spec.RouterName, spec.BridgeName(sub.Name), Out, routerMAC, eniMAC, to.IP, primary, dport, snatPort,
		fmt.Sprintf("router: %s owned by %s eth0", primary, inst))
	add(Reply, spec.RouterName, port, Out, routerMAC, eniMAC, to.IP, primary, dport, snatPort, "towards the ENI")
	add(Reply, inst, "eth0", In, routerMAC, eniMAC, to.IP, primary, dport, snatPort, inst+" eth0 owns "+primary.String())
	if from.Pod != nil {
		veth := spec.HostVethName(from.Pod.Namespace, from.Pod.Name)
		vmac := spec.HostVethMAC(from.Pod.Namespace, from.Pod.Name)
		h = add(Reply, inst, veth, Out, vmac, from.MAC, to.IP, from.IP, dport, sport,
			fmt.Sprintf("%s: rule 512 to %s lookup main -> dev %s", inst, from.IP, veth))
		h.NAT = fmt.Sprintf("%s un-SNAT %s -> %s (conntrack)", inst, primary, from.IP)
		add(Reply, from.Object, "eth0", In, vmac, from.MAC, to.IP, from.IP, dport, sport, from.Object+" receives it on eth0")
	}
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
