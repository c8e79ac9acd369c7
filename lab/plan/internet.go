package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// InternetBridge is the internet router's LAN bridge.
const InternetBridge = "br-inet"

// Interface names of the internet gateway and the router's link to it.
const (
	GatewayVPCIf      = "vpc"  // in the igw namespace, towards the VPC router
	GatewayInternetIf = "inet" // in the igw namespace, on the internet LAN
	RouterGatewayIf   = "igw"  // in the router namespace, towards the gateway
)

// internet renders the VPC's internet gateway and the internet behind it:
// the router's default route to the gateway, the gateway's 1:1 NAT of
// Elastic IPs, and an internet router with a LAN of internet hosts.
//
// Subnets with a route table of their own are routed by it (see
// routeTables), and NAT gateways add their Elastic IPs to the gateway's.
func (p *Plan) internet(t *spec.Topology, public []spec.PublicIP) {
	link := spec.GatewayLink.Addr()
	routerIP, igwIP := link.Next(), link.Next().Next()
	p.routeTables(t, igwIP)
	in := t.Internet
	if in == nil {
		return
	}
	public = append(public, p.natGateways(t)...)
	router := p.Namespaces[0]
	igw := p.add(spec.GatewayName, RoleGateway)
	inet := p.add(spec.InternetName, RoleInternet)
	lanRouter := spec.InternetLAN.Addr().Next()
	lanGateway := lanRouter.Next()

	p.Veths = append(p.Veths,
		Veth{A: End{NS: igw.Name, Name: GatewayVPCIf, MAC: spec.GatewayVPCMAC, MTU: 1500},
			B: End{NS: router.Name, Name: RouterGatewayIf, MAC: spec.RouterGatewayMAC, MTU: 1500}},
		Veth{A: End{NS: igw.Name, Name: GatewayInternetIf, MAC: spec.GatewayInternetMAC, MTU: 1500},
			B: End{NS: inet.Name, Name: spec.RouterPortName(spec.GatewayName, 0), MAC: spec.RouterPortMAC(spec.GatewayName, 0),
				MTU: 1500, Master: InternetBridge}})
	router.Addrs = append(router.Addrs, Addr{Dev: RouterGatewayIf, Prefix: netip.PrefixFrom(routerIP, spec.GatewayLink.Bits())})
	router.Routes = append(router.Routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: igwIP, Dev: RouterGatewayIf})

	igw.Sysctls = []Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}, {Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
		{Key: "net/ipv4/conf/default/rp_filter", Value: "0"}}
	igw.Addrs = []Addr{{Dev: GatewayVPCIf, Prefix: netip.PrefixFrom(igwIP, spec.GatewayLink.Bits())},
		{Dev: GatewayInternetIf, Prefix: netip.PrefixFrom(lanGateway, spec.InternetLAN.Bits())}}
	igw.Routes = []Route{{Dst: t.VPC.CIDR, Gw: routerIP, Dev: GatewayVPCIf},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: lanRouter, Dev: GatewayInternetIf}}
	igw.Iptables = GatewayRules(public)

	inet.Sysctls = []Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}, {Key: "net/ipv4/conf/all/send_redirects", Value: "0"},
		{Key: "net/ipv4/conf/default/send_redirects", Value: "0"},
		{Key: "net/bridge/bridge-nf-call-iptables", Value: "0", Optional: true}}
	br := Bridge{Name: InternetBridge, MAC: spec.InternetRouterMAC, MTU: 1500,
		FDB: []FDB{{MAC: spec.GatewayInternetMAC, Port: spec.RouterPortName(spec.GatewayName, 0)}}}
	inet.Addrs = []Addr{{Dev: InternetBridge, Prefix: netip.PrefixFrom(lanRouter, spec.InternetLAN.Bits())}}
	inet.Routes = []Route{{Dst: spec.PublicRange, Gw: lanGateway, Dev: InternetBridge}}
	for _, h := range in.Hosts {
		ns := p.add(h.Name, RoleInternetHost)
		mac, port := spec.ENIMAC(h.Name, 0), spec.RouterPortName(h.Name, 0)
		p.Veths = append(p.Veths, Veth{A: End{NS: ns.Name, Name: "eth0", MAC: mac, MTU: 1500},
			B: End{NS: inet.Name, Name: port, MAC: spec.RouterPortMAC(h.Name, 0), MTU: 1500, Master: InternetBridge}})
		br.FDB = append(br.FDB, FDB{MAC: mac, Port: port})
		ns.Addrs = []Addr{{Dev: "eth0", Prefix: netip.PrefixFrom(h.IP, spec.InternetLAN.Bits())}}
		ns.Routes = []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: lanRouter, Dev: "eth0"}}
	}
	inet.Bridges = []Bridge{br}
}

// GatewayRules is the internet gateway's 1:1 NAT: each Elastic IP is DNATed
// to its private address on the way in and the private address SNATed to
// it on the way out. An address without a public IP does not reach the
// internet, as in a VPC.
func GatewayRules(ips []spec.PublicIP) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*nat")
	w(":PREROUTING ACCEPT [0:0]")
	w(":POSTROUTING ACCEPT [0:0]")
	for _, m := range ips {
		w(`-A PREROUTING -i %s -d %s/32 -m comment --comment "lab: internet gateway, public to private" -j DNAT --to-destination %s`,
			GatewayInternetIf, m.Public, m.Private)
	}
	for _, m := range ips {
		w(`-A POSTROUTING -o %s -s %s/32 -m comment --comment "lab: internet gateway, private to public" -j SNAT --to-source %s`,
			GatewayInternetIf, m.Private, m.Public)
	}
	w("COMMIT")
	w("*filter")
	w(":FORWARD ACCEPT [0:0]")
	w(`-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`)
	for _, m := range ips {
		w(`-A FORWARD -i %s -o %s -s %s/32 -j ACCEPT`, GatewayVPCIf, GatewayInternetIf, m.Private)
	}
	w(`-A FORWARD -i %s -o %s -m comment --comment "lab: no public IP, no internet" -j DROP`, GatewayVPCIf, GatewayInternetIf)
	w("COMMIT")
	return b.String()
}
