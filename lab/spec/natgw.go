package spec

import (
	"fmt"
	"net/netip"
	"slices"
)

// SubnetRouteTable is a custom VPC route table. The VPC's local route (the VPC
// CIDR) is implicit, as in AWS; the lab models the default route only,
// which is what decides how a subnet reaches the internet. A table without
// a default route leaves its subnets without internet: the VPC router
// answers their internet traffic with an unreachable route.
type SubnetRouteTable struct {
	Name   string       `yaml:"name"`
	Routes []RouteEntry `yaml:"routes"`
}

// RouteEntry is one route of a route table: 0.0.0.0/0 to a NAT gateway
// or to the internet gateway (exactly one target).
type RouteEntry struct {
	Dst             netip.Prefix `yaml:"dst"`
	NATGateway      string       `yaml:"natGateway"`
	InternetGateway bool         `yaml:"internetGateway"`
}

// NATGateway is a public NAT gateway: an ENI in a (public) subnet with a
// private IP, and an Elastic IP the internet gateway maps that IP to. It
// SNATs traffic from the VPC to its private IP (AWS: "Elastic IP address
// and private IP address of the NAT gateway", VPC user guide, NAT gateway
// basics).
type NATGateway struct {
	Name     string     `yaml:"name"`
	Subnet   string     `yaml:"subnet"`
	IP       netip.Addr `yaml:"ip"`
	PublicIP netip.Addr `yaml:"publicIP"`
}

// NATGatewayIdleTimeout is a NAT gateway's TCP idle timeout in seconds
// (AWS: "NAT gateway ... idle timeout of 350 seconds", VPC user guide,
// troubleshooting NAT gateways).
const NATGatewayIdleTimeout = 350

// EgressKind says where a subnet's default route leads.
type EgressKind int

// Default route targets.
const (
	EgressNone EgressKind = iota // no default route: unreachable
	EgressIGW                    // the internet gateway
	EgressNAT                    // a NAT gateway
)

// Egress is a subnet's default route as the VPC router applies it.
type Egress struct {
	Kind EgressKind
	// Table is the subnet's route table name, "" for the main table.
	Table string
	// NAT is the NAT gateway of an EgressNAT route.
	NAT *NATGateway
}

// RouteTableNamed returns a route table by name, or nil.
func (t *Topology) RouteTableNamed(name string) *SubnetRouteTable {
	for i := range t.RouteTables {
		if t.RouteTables[i].Name == name {
			return &t.RouteTables[i]
		}
	}
	return nil
}

// NATGatewayNamed returns a NAT gateway by name, or nil.
func (t *Topology) NATGatewayNamed(name string) *NATGateway {
	for i := range t.NATGateways {
		if t.NATGateways[i].Name == name {
			return &t.NATGateways[i]
		}
	}
	return nil
}

// DefaultRoute is where a subnet's internet traffic goes: its route
// table's 0.0.0.0/0, or for a subnet on the main table the internet
// gateway when the VPC has one (the lab's behaviour before route tables).
func (t *Topology) DefaultRoute(subnet string) Egress {
	s, _ := t.Subnet(subnet)
	if s.RouteTable == "" {
		if t.Internet != nil {
			return Egress{Kind: EgressIGW}
		}
		return Egress{}
	}
	e := Egress{Table: s.RouteTable}
	rt := t.RouteTableNamed(s.RouteTable)
	if rt == nil {
		return e
	}
	for _, r := range rt.Routes {
		if r.Dst.Bits() != 0 {
			continue
		}
		switch {
		case r.InternetGateway && t.Internet != nil:
			e.Kind = EgressIGW
		case r.NATGateway != "":
			if n := t.NATGatewayNamed(r.NATGateway); n != nil {
				e.Kind, e.NAT = EgressNAT, n
			}
		}
	}
	return e
}

// NodeVPCCNI is aws-node's configuration on a node: the lab-wide vpcCNI
// with the node's externalSNAT and excludeSNATCIDRs, when it sets them.
func (t *Topology) NodeVPCCNI(node string) VPCCNI {
	c := t.VPCCNI
	if n := t.Node(node); n != nil && n.VPCCNI != nil {
		c.ExternalSNAT = c.ExternalSNAT || n.VPCCNI.ExternalSNAT
		if len(n.VPCCNI.ExcludeSNATCIDRs) > 0 {
			c.ExcludeSNATCIDRs = n.VPCCNI.ExcludeSNATCIDRs
		}
	}
	return c
}

// NodeSNATs says whether aws-node on node SNATs a pod's packet to dst to
// the node's primary IP: not with external SNAT, not to the VPC CIDR and
// not to an excluded CIDR.
func (t *Topology) NodeSNATs(node string, dst netip.Addr) bool {
	c := t.NodeVPCCNI(node)
	if c.ExternalSNAT || t.VPC.CIDR.Contains(dst) {
		return false
	}
	return !slices.ContainsFunc(c.ExcludeSNATCIDRs, func(p netip.Prefix) bool { return p.Contains(dst) })
}

// natGateways checks route tables, subnets' tables, NAT gateways and the
// nodes' VPC CNI overrides.
func (v *validator) natGateways(subnets map[string]Subnet, claim func(string, string, string), own func(string, netip.Addr, string)) {
	t := v.t
	tables := map[string]bool{}
	for i, rt := range t.RouteTables {
		p := fmt.Sprintf("routeTables[%d]", i)
		switch {
		case !dnsLabel.MatchString(rt.Name) || len(rt.Name) > 63:
			v.add(p+".name", "route table name %q: use lowercase letters, digits and '-' (at most 63)", rt.Name)
		case tables[rt.Name]:
			v.add(p+".name", "route table %q is declared twice", rt.Name)
		}
		tables[rt.Name] = true
		def := false
		for j, r := range rt.Routes {
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			if r.Dst != netip.MustParsePrefix("0.0.0.0/0") {
				v.add(rp+".dst", "dst %v: the lab models the default route 0.0.0.0/0 only (the VPC's local route is implicit)", r.Dst)
			} else if def {
				v.add(rp+".dst", "route table %q has two routes to 0.0.0.0/0", rt.Name)
			}
			def = true
			switch {
			case r.InternetGateway == (r.NATGateway != ""):
				v.add(rp, "a route needs exactly one target: natGateway: <name> or internetGateway: true")
			case r.InternetGateway && t.Internet == nil:
				v.add(rp+".internetGateway", "the VPC has no internet gateway (add an internet: section)")
			case r.NATGateway != "" && t.NATGatewayNamed(r.NATGateway) == nil:
				v.add(rp+".natGateway", "unknown NAT gateway %q", r.NATGateway)
			}
		}
	}
	for i, az := range t.AZs {
		for j, s := range az.Subnets {
			if s.RouteTable != "" && !tables[s.RouteTable] {
				v.add(fmt.Sprintf("azs[%d].subnets[%d].routeTable", i, j), "unknown route table %q", s.RouteTable)
			}
		}
	}
	publics := map[netip.Addr]bool{}
	if t.Internet != nil {
		for _, m := range t.Internet.PublicIPs {
			publics[m.Public] = true
		}
	}
	for i, n := range t.NATGateways {
		p := fmt.Sprintf("natGateways[%d]", i)
		if t.Internet == nil {
			v.add(p, "NAT gateway %q needs the VPC's internet gateway (add an internet: section)", n.Name)
		}
		if v.checkObjectName(p+".name", n.Name, "NAT gateway") {
			claim(p+".name", n.Name, "NAT gateway")
			if port := RouterPortName(n.Name, 0); len(port) > MaxIfName {
				v.add(p+".name", "NAT gateway name %q makes the router port name %q, %d bytes; interface names are at most %d",
					n.Name, port, len(port), MaxIfName)
			}
		}
		s, ok := subnets[n.Subnet]
		if !ok {
			v.add(p+".subnet", "unknown subnet %q", n.Subnet)
		} else if v.checkHostAddr(p+".ip", n.IP, s) {
			if slices.Contains(t.LBAddrs(s), n.IP) {
				v.add(p+".ip", "%s is set aside for load balancer nodes in subnet %s", n.IP, s.Name)
			}
			own(p+".ip", n.IP, "NAT gateway "+n.Name)
		}
		switch {
		case !PublicRange.Contains(n.PublicIP):
			v.add(p+".publicIP", "%v: public IPs come from %s (a documentation range)", n.PublicIP, PublicRange)
		case n.PublicIP.As4()[3] > 200:
			v.add(p+".publicIP", "%s: the lab gives 203.0.113.201-254 to load balancer nodes; pick a lower address", n.PublicIP)
		case publics[n.PublicIP]:
			v.add(p+".publicIP", "public IP %s is mapped twice", n.PublicIP)
		}
		publics[n.PublicIP] = true
	}
	for i, n := range t.Nodes {
		if n.VPCCNI == nil {
			continue
		}
		p := fmt.Sprintf("nodes[%d].vpcCNI", i)
		if n.VPCCNI.Version != "" {
			v.add(p+".version", "a node cannot run its own VPC CNI version; set vpcCNI.version for the lab")
		}
		v.excludeCIDRs(p, n.VPCCNI.ExcludeSNATCIDRs)
	}
	v.excludeCIDRs("vpcCNI", t.VPCCNI.ExcludeSNATCIDRs)
}

func (v *validator) excludeCIDRs(path string, cidrs []netip.Prefix) {
	for j, c := range cidrs {
		if !c.IsValid() || !c.Addr().Is4() || c.Masked() != c {
			v.add(fmt.Sprintf("%s.excludeSNATCIDRs[%d]", path, j), "%v: an IPv4 network address is required", c)
		}
	}
}
