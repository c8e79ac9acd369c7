package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// Roles of the control plane's namespaces.
const (
	RoleControlPlaneRouter Role = "control-plane-router"
	RoleAPIServer          Role = "api-server"
	RoleControlPlaneNLB    Role = "control-plane-nlb"
)

// Interface names of the link between the internet gateway and the
// control plane VPC's router.
const (
	GatewayControlPlaneIf = "eks" // in the igw namespace
	ControlPlaneGatewayIf = "igw" // in the eks-vpc namespace
	// XENIDev is an API server's X-ENI: its second interface, in a
	// customer subnet.
	XENIDev = "eth1"
)

// ControlPlaneBridge is the control plane VPC router's bridge of subnet i.
func ControlPlaneBridge(i int) string { return fmt.Sprintf("br-eks-%d", i) }

// controlPlanePublicIPs are the NLB nodes' Elastic IPs, for the internet
// gateway's 1:1 NAT.
func controlPlanePublicIPs(t *spec.Topology) []spec.PublicIP {
	if t.ControlPlane == nil || !t.ControlPlane.PublicAccess() || t.Internet == nil {
		return nil
	}
	var out []spec.PublicIP
	for i := 0; i < spec.APIServerCount; i++ {
		out = append(out, spec.PublicIP{Private: spec.ControlPlaneNLBIP(i), Public: spec.ControlPlaneNLBPublicIP(i)})
	}
	return out
}

// controlPlane renders the EKS control plane: the VPC resolver on the
// customer's router, the AWS-owned VPC (a router with one bridge per AZ,
// linked to the lab's internet gateway), one API server instance per AZ
// with an X-ENI in a customer subnet, and the public endpoint's NLB.
//
// An API server reaches the customer's VPC only through its X-ENI (so a
// kubelet sees the X-ENI's address) and answers the NLB's flows through
// the NLB (its default route), which undoes the NLB's DNAT: the API server
// sees the client's address, as behind an NLB with client IP preservation.
func (p *Plan) controlPlane(t *spec.Topology) {
	c := t.ControlPlane
	if c == nil {
		return
	}
	router := p.Namespaces[0]
	// The Amazon-provided DNS server answers at the VPC base + 2; the lab
	// serves it from the VPC router.
	router.Addrs = append(router.Addrs, Addr{Dev: "lo", Prefix: netip.PrefixFrom(spec.VPCResolver(t.VPC.CIDR), 32)})

	cp := p.add(spec.ControlPlaneRouterName, RoleControlPlaneRouter)
	cp.Sysctls = []Sysctl{
		{Key: "net/ipv4/ip_forward", Value: "1"},
		{Key: "net/ipv4/conf/all/send_redirects", Value: "0"},
		{Key: "net/ipv4/conf/default/send_redirects", Value: "0"},
		{Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
		{Key: "net/ipv4/conf/default/rp_filter", Value: "0"},
		{Key: "net/bridge/bridge-nf-call-iptables", Value: "0", Optional: true},
	}
	for i := 0; i < spec.APIServerCount; i++ {
		s := spec.ControlPlaneSubnet(i)
		br := ControlPlaneBridge(i)
		cp.Bridges = append(cp.Bridges, Bridge{Name: br, MAC: spec.RouterMAC(fmt.Sprintf("eks-%d", i)), MTU: 1500})
		cp.Addrs = append(cp.Addrs, Addr{Dev: br, Prefix: netip.PrefixFrom(spec.Gateway(s), s.Bits())})
	}
	if igw := p.NS(spec.GatewayName); igw != nil {
		link := spec.ControlPlaneGatewayLink.Addr()
		cpIP, igwIP := link.Next(), link.Next().Next()
		p.Veths = append(p.Veths, Veth{
			A: End{NS: igw.Name, Name: GatewayControlPlaneIf, MAC: spec.ENIMAC(spec.GatewayName, 1), MTU: 1500},
			B: End{NS: cp.Name, Name: ControlPlaneGatewayIf, MAC: spec.RouterPortMAC(spec.ControlPlaneRouterName, 0), MTU: 1500}})
		igw.Addrs = append(igw.Addrs, Addr{Dev: GatewayControlPlaneIf, Prefix: netip.PrefixFrom(igwIP, spec.ControlPlaneGatewayLink.Bits())})
		igw.Routes = append(igw.Routes, Route{Dst: spec.ControlPlaneCIDR, Gw: cpIP, Dev: GatewayControlPlaneIf})
		cp.Addrs = append(cp.Addrs, Addr{Dev: ControlPlaneGatewayIf, Prefix: netip.PrefixFrom(cpIP, spec.ControlPlaneGatewayLink.Bits())})
		cp.Routes = append(cp.Routes, Route{Dst: defaultRoute, Gw: igwIP, Dev: ControlPlaneGatewayIf})
	}
	public := c.PublicAccess() && t.Internet != nil
	for i := 0; i < spec.APIServerCount; i++ {
		name := spec.APIServerName(i)
		s := spec.ControlPlaneSubnet(i)
		ns := p.add(name, RoleAPIServer)
		ns.Sysctls = []Sysctl{{Key: "net/ipv4/conf/all/arp_ignore", Value: "1"},
			{Key: "net/ipv4/conf/all/rp_filter", Value: "0"}, {Key: "net/ipv4/conf/default/rp_filter", Value: "0"}}
		p.attachTo(cp, ns, name, 0, ControlPlaneBridge(i), 1500)
		ns.Addrs = append(ns.Addrs, Addr{Dev: "eth0", Prefix: netip.PrefixFrom(spec.APIServerIP(i), s.Bits())})
		gw := spec.Gateway(s)
		if public {
			gw = spec.ControlPlaneNLBIP(i)
		}
		ns.Routes = append(ns.Routes, Route{Dst: defaultRoute, Gw: gw, Dev: "eth0"})
		x := t.XENIOf(i)
		if x == nil {
			continue
		}
		xs, _ := t.Subnet(x.Subnet)
		p.attach(t, ns, name, 1, x.Subnet)
		ns.Addrs = append(ns.Addrs, Addr{Dev: XENIDev, Prefix: netip.PrefixFrom(x.IP, xs.CIDR.Bits())})
		ns.Routes = append(ns.Routes, Route{Dst: t.VPC.CIDR, Gw: spec.Gateway(xs.CIDR), Dev: XENIDev})
	}
	if !public {
		return
	}
	nlb := p.add(spec.ControlPlaneNLBName, RoleControlPlaneNLB)
	nlb.Sysctls = []Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}, {Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
		{Key: "net/ipv4/conf/default/rp_filter", Value: "0"}, {Key: "net/ipv4/conf/all/arp_ignore", Value: "1"},
		{Key: "net/ipv4/conf/all/arp_announce", Value: "2"},
		{Key: "net/ipv4/conf/all/send_redirects", Value: "0"}, {Key: "net/ipv4/conf/default/send_redirects", Value: "0"}}
	for i := 0; i < spec.APIServerCount; i++ {
		s := spec.ControlPlaneSubnet(i)
		dev := spec.ENIName(i)
		gw := spec.Gateway(s)
		p.attachTo(cp, nlb, spec.ControlPlaneNLBName, i, ControlPlaneBridge(i), 1500)
		nlb.Addrs = append(nlb.Addrs, Addr{Dev: dev, Prefix: netip.PrefixFrom(spec.ControlPlaneNLBIP(i), s.Bits())})
		nlb.Routes = append(nlb.Routes, Route{Dst: defaultRoute, Gw: gw, Dev: dev, Table: 10 + i})
		nlb.Rules = append(nlb.Rules, Rule{Priority: 100, Src: netip.PrefixFrom(spec.ControlPlaneNLBIP(i), 32), Table: 10 + i})
		if i == 0 {
			nlb.Routes = append(nlb.Routes, Route{Dst: defaultRoute, Gw: gw, Dev: dev})
		}
	}
	nlb.Iptables = ControlPlaneNLBRules(c.PublicCIDRs())
}

// attachTo connects an instance's ENI to a bridge of router r (attach is
// the customer VPC's router).
func (p *Plan) attachTo(r, ns *Namespace, instance string, eni int, bridge string, mtu int) {
	mac := spec.ENIMAC(instance, eni)
	port := spec.RouterPortName(instance, eni)
	p.Veths = append(p.Veths, Veth{
		A: End{NS: ns.Name, Name: spec.ENIName(eni), MAC: mac, MTU: mtu},
		B: End{NS: r.Name, Name: port, MAC: spec.RouterPortMAC(instance, eni), MTU: mtu, Master: bridge},
	})
	for i := range r.Bridges {
		if r.Bridges[i].Name == bridge {
			r.Bridges[i].FDB = append(r.Bridges[i].FDB, FDB{MAC: mac, Port: port})
		}
	}
}

// ControlPlaneNLBRules is the public endpoint's NLB: each node forwards
// TCP 443 to the API server in its AZ (cross-zone off, an NLB's default)
// keeping the client's address, and admits only the endpoint's
// publicAccessCidrs; anything else on 443 is dropped at the NLB.
func ControlPlaneNLBRules(cidrs []netip.Prefix) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*nat")
	w(":PREROUTING ACCEPT [0:0]")
	for i := 0; i < spec.APIServerCount; i++ {
		w(`-A PREROUTING -i %s -d %s/32 -p tcp -m tcp --dport %d -m comment --comment "lab: EKS public endpoint, NLB node %d to API server %d" -j DNAT --to-destination %s:%d`,
			spec.ENIName(i), spec.ControlPlaneNLBIP(i), spec.APIServerPort, i, i, spec.APIServerIP(i), spec.APIServerPort)
	}
	w("COMMIT")
	w("*filter")
	w(":FORWARD ACCEPT [0:0]")
	w(`-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`)
	for _, c := range cidrs {
		w(`-A FORWARD -s %s -p tcp -m tcp --dport %d -m comment --comment "lab: EKS publicAccessCidrs" -j ACCEPT`, c, spec.APIServerPort)
	}
	w(`-A FORWARD -p tcp -m tcp --dport %d -m comment --comment "lab: EKS publicAccessCidrs, source not admitted" -j DROP`, spec.APIServerPort)
	w("COMMIT")
	return b.String()
}
