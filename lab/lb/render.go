package lb

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// NodeMark is the connection mark the VPC router gives flows an LB node
// opened, so that replies to a preserved client address are routed back
// to that node (reference §1.2: the VPC returns them through the NLB).
func NodeMark(k int) uint32 { return uint32(0x10 + k) }

// NodeTable is the router's route table for replies to LB node k.
func NodeTable(k int) int { return 100 + k }

// ArrivalMark marks, in an NLB's namespace, the packets that arrived on
// node i's ENI. A reset the kernel sends for one of them carries the mark
// too (fwmark_reflect), and a rule routes it out of the ENI it answers,
// not out of the first node's.
func ArrivalMark(node int) uint32 { return uint32(node+1) << 8 }

// ArrivalMask is the bits ArrivalMark uses; the SNAT marks use 0xff.
const ArrivalMask = 0xf00

// ChainName is an NLB node's chain for one listener.
func ChainName(node int, proto string, port int) string {
	return fmt.Sprintf("LB-AZ%d-%s-%d", node, strings.ToUpper(proto), port)
}

// Health is what NLBRules knows of the targets: which pass their health
// checks and which fail them. A target in neither (its checks have not
// decided yet) gets no new flows and keeps its old ones.
type Health struct {
	Healthy, Unhealthy func(g *TargetGroup, t Target) bool
}

// AllHealthy is the health a load balancer is built with, before its first
// checks.
var AllHealthy = Health{
	Healthy:   func(*TargetGroup, Target) bool { return true },
	Unhealthy: func(*TargetGroup, Target) bool { return false },
}

// NLBRules is an NLB namespace's whole nat and filter tables.
//
// nat: for each node (AZ) and listener a chain that spreads new flows over
// the targets that node may use (statistic random, kube-proxy's own
// technique; the kernel's conntrack pins each flow to its target), and SNAT
// to the node's address for target groups that do not preserve the client
// IP. A node with no target it may use has no DNAT, so the kernel answers a
// new TCP flow with a reset.
//
// filter: the NLB's passive health check. "If a target becomes unhealthy,
// the load balancer sends a TCP RST for packets received on the client
// connections associated with the target, unless the unhealthy target
// triggers the load balancer to fail open" (aws-lb.md): a packet of an
// established TCP flow to an unhealthy target, in a group that still has a
// healthy one, is answered with a reset. The kernel sends it from the
// flow's own addresses (the conntrack entry un-NATs it), so the client
// sees it come from the NLB; mangle's arrival marks send it out of the ENI
// the client's packet came in on.
func NLBRules(l *LoadBalancer, h Health) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	eligible := func(g *TargetGroup, az string) []Target {
		return g.Eligible(az, func(t Target) bool { return h.Healthy(g, t) })
	}
	w("*nat")
	w(":PREROUTING ACCEPT [0:0]")
	w(":POSTROUTING ACCEPT [0:0]")
	w(":LB-LISTENERS - [0:0]")
	w(":LB-SNAT - [0:0]")
	for _, n := range l.Nodes {
		for _, li := range l.Listeners {
			w(":%s - [0:0]", ChainName(n.Index, li.Protocol, li.Port))
		}
	}
	w(`-A PREROUTING -m comment --comment "lab: %s listeners" -j LB-LISTENERS`, l.Name)
	w(`-A POSTROUTING -m comment --comment "lab: %s source NAT" -j LB-SNAT`, l.Name)
	for _, n := range l.Nodes {
		for _, li := range l.Listeners {
			proto := strings.ToLower(li.Protocol)
			chain := ChainName(n.Index, li.Protocol, li.Port)
			w(`-A LB-LISTENERS -d %s/32 -p %s -m %s --dport %d -m comment --comment "%s node %s" -j %s`,
				n.IP, proto, proto, li.Port, l.Name, n.AZ, chain)
			targets := eligible(li.Group, n.AZ)
			if !li.Group.PreserveClientIP && len(targets) > 0 {
				w(`-A %s -j MARK --set-xmark 0x%x/0xff`, chain, n.Index+1)
			}
			for i, t := range targets {
				left := len(targets) - i
				if left > 1 {
					w(`-A %s -p %s -m comment --comment "%s" -m statistic --mode random --probability %.10f -j DNAT --to-destination %s`,
						chain, proto, t.Object, 1/float64(left), t)
				} else {
					w(`-A %s -p %s -m comment --comment "%s" -j DNAT --to-destination %s`, chain, proto, t.Object, t)
				}
			}
		}
		w(`-A LB-SNAT -m mark --mark 0x%x/0xff -j SNAT --to-source %s`, n.Index+1, n.IP)
	}
	w("COMMIT")
	w("*mangle")
	w(":PREROUTING ACCEPT [0:0]")
	for _, n := range l.Nodes {
		w(`-A PREROUTING -i %s -m comment --comment "lab: %s arrived at node %s" -j MARK --set-xmark 0x%x/0x%x`,
			spec.ENIName(n.Index), l.Name, n.AZ, ArrivalMark(n.Index), ArrivalMask)
	}
	w("COMMIT")
	w("*filter")
	w(":FORWARD ACCEPT [0:0]")
	w(":LB-UNHEALTHY - [0:0]")
	w(`-A FORWARD -m comment --comment "lab: %s resets flows to unhealthy targets" -j LB-UNHEALTHY`, l.Name)
	seen := map[*TargetGroup]bool{}
	for _, li := range l.Listeners {
		g := li.Group
		if seen[g] || strings.ToLower(li.Protocol) != "tcp" {
			continue // a group once; passive checks do not apply to UDP
		}
		seen[g] = true
		// A target some node still sends new flows to (a zone or the
		// whole group failing open) keeps its flows.
		used := map[Target]bool{}
		for _, n := range l.Nodes {
			for _, t := range eligible(g, n.AZ) {
				used[t] = true
			}
		}
		for _, t := range g.Targets {
			if !used[t] && h.Unhealthy(g, t) {
				w(`-A LB-UNHEALTHY -d %s/32 -p tcp -m tcp --dport %d -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL -m comment --comment "%s %s unhealthy" -j REJECT --reject-with tcp-reset`,
					t.IP, t.Port, g.Name, t.Object)
			}
		}
	}
	w("COMMIT")
	return b.String()
}

// RouterReturn is what the VPC router needs so replies to a preserved client
// address go back through the LB node that forwarded the flow: a mark for
// flows each LB node opens (matched by the node's ENI MAC), restored on
// replies, and a rule and table per node.
type RouterReturn struct {
	Mangle string // mangle table payload
	Rules  []ReturnRule
}

// ReturnRule is `ip rule add fwmark M/0xff lookup T` with `default via LB`.
type ReturnRule struct {
	Mark   uint32
	Table  int
	Via    netip.Addr
	Bridge string
}

// Return renders the router's share for every LB node.
func Return(lbs []*LoadBalancer) RouterReturn {
	var r RouterReturn
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*mangle")
	w(":PREROUTING ACCEPT [0:0]")
	k := 0
	for _, l := range lbs {
		for _, n := range l.Nodes {
			mark := NodeMark(k)
			w(`-A PREROUTING -m mac --mac-source %s -m conntrack --ctstate NEW -m comment --comment "lab: flows %s %s opens" -j CONNMARK --set-xmark 0x%x/0xff`,
				spec.ENIMAC(l.Name, n.Index), l.Name, n.AZ, mark)
			r.Rules = append(r.Rules, ReturnRule{Mark: mark, Table: NodeTable(k), Via: n.IP, Bridge: spec.BridgeName(n.Subnet.Name)})
			k++
		}
	}
	w(`-A PREROUTING -m conntrack --ctdir REPLY -m comment --comment "lab: replies return to the LB node" -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff`)
	w("COMMIT")
	if k > 0 {
		r.Mangle = b.String()
	}
	return r
}
