package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

// RoleLoadBalancer is an NLB's or ALB's namespace.
const RoleLoadBalancer Role = "load-balancer"

// loadBalancers renders each LB as a namespace with one ENI per AZ on its
// subnet's bridge, source routing per ENI, the NLB's kernel data path (all
// targets eligible until the app server's health checks say otherwise), and
// the router's return path for preserved client addresses.
func (p *Plan) loadBalancers(t *spec.Topology, m *lb.Model) {
	router := p.Namespaces[0]
	for _, l := range m.LBs {
		ns := p.add(l.Name, RoleLoadBalancer)
		ns.Sysctls = []Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}, {Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
			{Key: "net/ipv4/conf/default/rp_filter", Value: "0"}, {Key: "net/ipv4/conf/all/arp_ignore", Value: "1"},
			{Key: "net/ipv4/conf/all/arp_announce", Value: "2"}}
		for _, n := range l.Nodes {
			dev := spec.ENIName(n.Index)
			gw := spec.Gateway(n.Subnet.CIDR)
			p.attach(t, ns, l.Name, n.Index, n.Subnet.Name)
			ns.Addrs = append(ns.Addrs, Addr{Dev: dev, Prefix: netip.PrefixFrom(n.IP, n.Subnet.CIDR.Bits())})
			table := 10 + n.Index
			ns.Routes = append(ns.Routes,
				Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: dev, Table: table})
			// Traffic from the node's address, and flows it forwards with a
			// client's preserved address, leave through the ENI they belong to.
			ns.Rules = append(ns.Rules, Rule{Priority: 100, Src: netip.PrefixFrom(n.IP, 32), Table: table},
				Rule{Priority: 101, IIF: dev, Table: table})
			if n.Index == 0 {
				ns.Routes = append(ns.Routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: dev})
			}
		}
		if l.Kind == lb.NLB {
			ns.Iptables = lb.NLBRules(l, lb.AllHealthy)
			// A reset the NLB sends (an unhealthy target's flows) is routed
			// by the mark of the packet it answers: out of the ENI that
			// packet came in on.
			ns.Sysctls = append(ns.Sysctls, Sysctl{Key: "net/ipv4/fwmark_reflect", Value: "1"})
			for _, n := range l.Nodes {
				ns.Rules = append(ns.Rules, Rule{Priority: 99, Mark: lb.ArrivalMark(n.Index), Mask: lb.ArrivalMask, Table: 10 + n.Index})
			}
			// The NLB's TCP idle timeout: a flow idle longer is forgotten,
			// and its next packet is a new flow the target does not know.
			ns.Sysctls = append(ns.Sysctls, Sysctl{Key: "net/netfilter/nf_conntrack_tcp_timeout_established",
				Value: strconv.Itoa(int(lb.NLBIdleTimeout / time.Second)), AfterIptables: true})
		}
	}
	ret := lb.Return(m.LBs)
	if ret.Mangle == "" {
		return
	}
	router.Iptables = mergeRestore(router.Iptables, ret.Mangle)
	for _, r := range ret.Rules {
		router.Rules = append(router.Rules, Rule{Priority: 100, Mark: r.Mark, Mask: 0xff, Table: r.Table})
		router.Routes = append(router.Routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: r.Via, Dev: r.Bridge, Table: r.Table})
	}
}

// LBModel decides a topology's load balancers, panicking on an error that
// validation (lab.Check) reports first.
func LBModel(t *spec.Topology) *lb.Model {
	m, err := lb.Build(t)
	if err != nil {
		panic(fmt.Sprintf("plan: load balancers of a topology that was not checked: %v", err))
	}
	return m
}

// publicIPs are the topology's Elastic IPs plus its internet-facing load
// balancer nodes'.
func publicIPs(t *spec.Topology, m *lb.Model) []spec.PublicIP {
	var out []spec.PublicIP
	if t.Internet != nil {
		out = append(out, t.Internet.PublicIPs...)
	}
	for _, l := range m.LBs {
		for _, n := range l.Nodes {
			if n.Public.IsValid() {
				out = append(out, spec.PublicIP{Private: n.IP, Public: n.Public})
			}
		}
	}
	return out
}
