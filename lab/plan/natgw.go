package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// RoleNATGateway is a NAT gateway's namespace.
const RoleNATGateway Role = "nat-gateway"

// Policy routing of the VPC's route tables on the router.
const (
	// RouteTableBase + i is the kernel table of the topology's route table i.
	RouteTableBase = 200
	// SubnetRulePriority is the priority of "from <subnet> lookup <table>":
	// after the load balancers' return rules (100), before main (32766).
	SubnetRulePriority = 1000
)

var defaultRoute = netip.MustParsePrefix("0.0.0.0/0")

// RouteTableID is the router's kernel table for a route table, or 0 when
// the topology has no table of that name.
func RouteTableID(t *spec.Topology, name string) int {
	for i, rt := range t.RouteTables {
		if rt.Name == name {
			return RouteTableBase + i
		}
	}
	return 0
}

// routeTables renders the VPC's route tables on the router: each table
// holds the VPC's local routes (every subnet on its bridge) and its
// default route (to the internet gateway, to a NAT gateway's ENI, or
// unreachable when it has none), and each subnet with a table is routed by
// source through it, as the VPC applies a subnet's table to what leaves
// the subnet. Subnets without a table keep the main table.
func (p *Plan) routeTables(t *spec.Topology, igwIP netip.Addr) {
	router := p.Namespaces[0]
	for i, rt := range t.RouteTables {
		table := RouteTableBase + i
		for _, s := range t.Subnets() {
			router.Routes = append(router.Routes, Route{Dst: s.CIDR, Dev: spec.BridgeName(s.Name), Link: true, Table: table})
		}
		def := Route{Dst: defaultRoute, Table: table, Unreachable: true}
		for _, r := range rt.Routes {
			if r.Dst.Bits() != 0 {
				continue
			}
			switch {
			case r.InternetGateway && t.Internet != nil:
				def = Route{Dst: defaultRoute, Gw: igwIP, Dev: RouterGatewayIf, Table: table}
			case r.NATGateway != "":
				if n := t.NATGatewayNamed(r.NATGateway); n != nil {
					def = Route{Dst: defaultRoute, Gw: n.IP, Dev: spec.BridgeName(n.Subnet), Table: table}
				}
			}
		}
		router.Routes = append(router.Routes, def)
	}
	for _, s := range t.Subnets() {
		if id := RouteTableID(t, s.RouteTable); id != 0 {
			router.Rules = append(router.Rules, Rule{Priority: SubnetRulePriority, Src: s.CIDR, Table: id})
		}
	}
}

// natGateways renders each NAT gateway: a namespace with one ENI in its
// subnet, forwarding (in and out of that one ENI) with SNAT of the VPC's
// traffic to its private IP, its own conntrack with the NAT gateway's
// 350 s idle timeout, and its Elastic IP for the internet gateway's 1:1 NAT.
func (p *Plan) natGateways(t *spec.Topology) []spec.PublicIP {
	var public []spec.PublicIP
	for i := range t.NATGateways {
		n := &t.NATGateways[i]
		s, _ := t.Subnet(n.Subnet)
		ns := p.add(n.Name, RoleNATGateway)
		p.attach(t, ns, n.Name, 0, n.Subnet)
		ns.Sysctls = []Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"},
			{Key: "net/ipv4/conf/all/rp_filter", Value: "0"}, {Key: "net/ipv4/conf/default/rp_filter", Value: "0"},
			// It forwards out of the interface a packet came in on: no
			// redirect to the router, which sent it on purpose.
			{Key: "net/ipv4/conf/all/send_redirects", Value: "0"}, {Key: "net/ipv4/conf/default/send_redirects", Value: "0"},
			{Key: "net/ipv4/conf/eth0/send_redirects", Value: "0"},
			{Key: "net/netfilter/nf_conntrack_tcp_timeout_established", Value: strconv.Itoa(spec.NATGatewayIdleTimeout),
				AfterIptables: true}}
		ns.Addrs = []Addr{{Dev: "eth0", Prefix: netip.PrefixFrom(n.IP, s.CIDR.Bits())}}
		ns.Routes = []Route{{Dst: defaultRoute, Gw: spec.Gateway(s.CIDR), Dev: "eth0"}}
		ns.Iptables = NATGatewayRules(t.VPC.CIDR, n.IP)
		public = append(public, spec.PublicIP{Private: n.IP, Public: n.PublicIP})
	}
	return public
}

// NATGatewayRules is a NAT gateway's SNAT: traffic from the VPC to
// anywhere outside it leaves with the gateway's private IP and a port the
// gateway picks (AWS: "the NAT gateway replaces the source IP address of
// the instances with the private IP address of the NAT gateway", VPC user
// guide, NAT gateways). Traffic to the VPC is not translated.
func NATGatewayRules(vpc netip.Prefix, ip netip.Addr) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*nat")
	w(":POSTROUTING ACCEPT [0:0]")
	w(`-A POSTROUTING -o eth0 -s %s ! -d %s -m comment --comment "lab: NAT gateway, private to its private IP" -j SNAT --to-source %s --random-fully`,
		vpc, vpc, ip)
	w("COMMIT")
	return b.String()
}
