package walk

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

// Picks are the choices made in one run, read back from its capture: the
// pod behind a Service, and the target a load balancer chose.
type Picks struct {
	Endpoint string
	Target   string
}

// LBOf finds a walk's load balancer, its node for the walk's AZ and, for an
// NLB, the listener on the walk's port. A walk the engine cannot run is an
// error here, which lab.Check reports before anything is built.
func LBOf(t *spec.Topology, w spec.Walk) (*lb.Model, *lb.LoadBalancer, lb.Node, *lb.Listener, error) {
	m, err := lb.Build(t)
	if err != nil {
		return nil, nil, lb.Node{}, nil, err
	}
	if err := runnableLBWalk(t, w); err != nil {
		return nil, nil, lb.Node{}, nil, err
	}
	ns, name, ok := strings.Cut(w.LoadBalancer, "/")
	if !ok {
		ns, name = spec.DefaultNamespace, w.LoadBalancer
	}
	for _, l := range m.LBs {
		if l.Owner != "Service "+ns+"/"+name && l.Owner != "Ingress "+ns+"/"+name {
			continue
		}
		// The walk's AZ must have a node of the load balancer: falling back
		// to another AZ's would walk a path the user did not ask for.
		node, err := l.NodeInAZ(w.AZ)
		if err != nil {
			return nil, nil, lb.Node{}, nil, fmt.Errorf("%s: %w", walkField(t, w, "az"), err)
		}
		if l.Kind == lb.ALB {
			return m, l, node, &l.Listeners[0], nil
		}
		for i := range l.Listeners {
			if l.Listeners[i].Port == w.Port {
				if p := l.Listeners[i].Protocol; p != "TCP" {
					return nil, nil, lb.Node{}, nil, fmt.Errorf("%s: %s's listener on port %d is %s; a load balancer walk sends TCP only",
						walkField(t, w, "port"), l.Owner, w.Port, p)
				}
				if err := preservedOnLink(t, w, l.Listeners[i].Group); err != nil {
					return nil, nil, lb.Node{}, nil, err
				}
				return m, l, node, &l.Listeners[i], nil
			}
		}
		return nil, nil, lb.Node{}, nil, fmt.Errorf("%s has no listener on port %d", l.Owner, w.Port)
	}
	return nil, nil, lb.Node{}, nil, fmt.Errorf("no load balancer for %q (is its Service a LoadBalancer, or its Ingress class alb?)", w.LoadBalancer)
}

// runnableLBWalk rejects load balancer walks the format accepts but the
// engine cannot run: it sends TCP (HTTP for an ALB) only, and an internet
// client knows the load balancer by its DNS name only, since its nodes'
// private addresses are not reachable from the internet.
func runnableLBWalk(t *spec.Topology, w spec.Walk) error {
	if w.Protocol != "tcp" {
		return fmt.Errorf("%s: protocol %s: a load balancer walk sends TCP only (UDP listeners are built but not walked)",
			walkField(t, w, "protocol"), w.Protocol)
	}
	if t.InternetHost(w.From) != nil && w.DNSName == "" {
		return fmt.Errorf("%s: %s is on the internet: set dnsName to a record of internet.dns that aliases %s, "+
			"so the walk sends to a public IP the answer holds", walkField(t, w, "dnsName"), w.From, w.LoadBalancer)
	}
	return nil
}

// preservedOnLink rejects a walk from a VPC host to a target group that
// preserves the client's address when a target answers from its eth0 in
// the host's own subnet: the target sends the reply straight to the host,
// switched, so the lab's VPC router never returns it through the NLB (as
// AWS's VPC does), and the connection fails. The lab does not model that
// return path; the walk would fail on a lab limitation, not a finding.
func preservedOnLink(t *spec.Topology, w spec.Walk, g *lb.TargetGroup) error {
	h := t.Host(w.From)
	if h == nil || g == nil || !g.PreserveClientIP {
		return nil
	}
	for _, tg := range g.Targets {
		node, eni := tg.Object, 0
		if p := t.Pod(tg.Object); p != nil {
			node, eni = p.Node, p.ENI
		}
		n := t.Node(node)
		if n == nil || eni != 0 || n.ENI(0).Subnet != h.Subnet {
			continue
		}
		return fmt.Errorf("%s: %s shares subnet %s with target %s, and %s preserves the client's address: the target would "+
			"answer %s on-link, past the load balancer, which the lab's VPC does not return through it; walk from a host in another subnet",
			walkField(t, w, "from"), h.Name, h.Subnet, tg.Object, g.Name, h.Name)
	}
	return nil
}

// walkField names a walk's field as "walks[i].field (line N)".
func walkField(t *spec.Topology, w spec.Walk, field string) string {
	for i := range t.Walks {
		if t.Walks[i].Name == w.Name {
			p := fmt.Sprintf("walks[%d].%s", i, field)
			if l := t.Line(p); l > 0 {
				return fmt.Sprintf("%s (line %d)", p, l)
			}
			return p
		}
	}
	return "walk " + w.Name + " " + field
}

// lbEndpoint is a load balancer node as one end of a leg; ip is the address
// the packet carries for it (the node's, or a client's the node preserves).
func lbEndpoint(l *lb.LoadBalancer, n lb.Node, ip netip.Addr) Endpoint {
	return Endpoint{Object: l.Name, IP: ip, MAC: spec.ENIMAC(l.Name, n.Index), Instance: l.Name, ENI: n.Index}
}

// deriveLB is walks C1-C4 and D1: client to a load balancer node, the
// node to its target, and for instance targets on through kube-proxy.
func deriveLB(t *spec.Topology, w spec.Walk, e *Expectation, picks Picks) (*Expectation, error) {
	lbs, l, node, li, err := LBOf(t, w)
	if err != nil {
		return nil, err
	}
	m := &model{t: t, lbs: lbs}
	e.LB, e.LBNode = l, node
	from := e.From
	sport := e.ClientPort
	front := lbEndpoint(l, node, node.IP)
	e.To = front
	if l.Kind == lb.ALB {
		return m.deriveALB(t, w, e, l, node, picks)
	}
	g := li.Group
	if picks.Target == "" {
		// Nothing got past the load balancer: expect a target the node may
		// use, so the report names the hops that never happened.
		if ts := g.Eligible(node.AZ, func(lb.Target) bool { return true }); len(ts) > 0 {
			picks.Target = ts[0].Object
		}
	}
	target, ok := findTarget(g, picks.Target)
	if !ok {
		return nil, fmt.Errorf("%s: target %q is not in %s", l.Owner, picks.Target, g.Name)
	}
	lport := uint16(li.Port)
	e.Hops = m.frontIn(from, front, node, sport, lport)
	src, sport2 := node.IP, uint16(0)
	nat := fmt.Sprintf("%s (%s) DNAT %s:%d -> %s (%s), SNAT to %s: client IP not preserved", l.Name, node.AZ, node.IP,
		li.Port, target, lb.ChainName(node.Index, li.Protocol, li.Port), node.IP)
	if g.PreserveClientIP {
		src, sport2 = from.IP, sport
		nat = fmt.Sprintf("%s (%s) DNAT %s:%d -> %s (%s); the client IP is preserved", l.Name, node.AZ, node.IP, li.Port,
			target, lb.ChainName(node.Index, li.Protocol, li.Port))
	}
	sender := lbEndpoint(l, node, src)
	// Where replies to src go: the LB node itself, or (preserved) the client
	// address, which the VPC router policy-routes back to the LB node.
	backTo := lbEndpoint(l, node, src)
	var mid []Hop
	var hairpinWhy string
	if g.TargetType == lb.TargetIP {
		pod, err := endpointOf(t, target.Object)
		if err != nil {
			return nil, err
		}
		e.Endpoint = &pod
		mid = m.path(Request, sender, pod, sport2, uint16(target.Port))
		mid[0].NAT = nat
		switch {
		case g.PreserveClientIP && from.Pod != nil && pod.Object == from.Object:
			// Hairpin onto the client itself: the SYN comes in with the
			// pod's own address as its source, a martian its kernel drops.
			e.Hairpin = true
			hairpinWhy = fmt.Sprintf("%s: the source is its own address; the kernel drops it as a martian, and the connection times out",
				from.Object)
		case g.PreserveClientIP && from.Pod != nil && pod.Instance == from.Instance:
			// Hairpin: the target pod shares the client's node, which
			// answers the client straight over the veths.
			e.Hairpin = true
			hairpinWhy = fmt.Sprintf("%s's answer comes from %s:%d, not from %s:%d, which it dialled: it knows no such connection, "+
				"resets it, and its own connection times out", from.Object, pod.IP, target.Port, node.IP, lport)
			mid = append(mid, m.path(Reply, pod, from, uint16(target.Port), sport2)...)
		default:
			mid = append(mid, m.path(Reply, pod, backTo, uint16(target.Port), sport2)...)
		}
	} else {
		via := nodeEndpoint(t, target.Object)
		svc := ServiceOf(t, spec.Walk{Service: strings.TrimPrefix(l.Owner, "Service "), Port: w.Port, Protocol: strings.ToLower(li.Protocol)})
		if svc == nil {
			return nil, fmt.Errorf("%s: its Service port %d is gone", l.Owner, w.Port)
		}
		if picks.Endpoint == "" {
			for _, ip := range SortedAddrs(svc.Endpoints(t)) {
				picks.Endpoint = svc.Endpoints(t)[ip]
				break
			}
		}
		ep, err := endpointOf(t, picks.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("%s: the endpoint picked: %w", l.Owner, err)
		}
		e.Endpoint = &ep
		if g.PreserveClientIP && from.Pod != nil && from.Instance == via.Instance {
			// Hairpin: the client is a pod on the target itself. The node
			// answers its own pod straight over the veth, from its own
			// address and NodePort, never through the NLB; the client's
			// kernel knows no such connection, and it times out (AWS:
			// "the connection times out", aws-lb.md).
			backTo = from
			e.Hairpin = true
			hairpinWhy = fmt.Sprintf("%s's answer comes from %s:%d, not from %s:%d, which it dialled: it knows no such connection, "+
				"resets it, and its own connection times out", from.Object, via.IP, svc.NodePort, node.IP, lport)
		}
		mid = m.path(Request, sender, via, sport2, svc.NodePort)
		mid[0].NAT = nat
		mid = append(mid, m.viaNode(svc, Endpoint{Object: from.Object, IP: src}, via, ep, sport2, uint16(svc.TargetPort(ep.Pod)),
			backTo)...)
	}
	for i := range mid {
		if mid[i].Leg == Reply && mid[i].Point.Object == spec.RouterName && mid[i].Dir == Out &&
			mid[i].Point.Iface == spec.BridgeName(node.Subnet.Name) && g.PreserveClientIP {
			mid[i].Why = fmt.Sprintf("router: a reply of a flow %s opened: connmark restored, rule fwmark -> default via %s (%s)",
				l.Name, node.IP, "the VPC returns it through the NLB")
		}
	}
	e.Hops = append(e.Hops, mid...)
	if e.Hairpin {
		e.Hops[len(e.Hops)-1].Why = hairpinWhy
		return e, nil
	}
	out := m.frontOut(lbEndpoint(l, node, node.IP), from, node, lport, sport)
	out[0].NAT = fmt.Sprintf("%s un-NAT: source %s:%d (conntrack)", l.Name, node.IP, li.Port)
	e.Hops = append(e.Hops, out...)
	return e, nil
}

// viaNode is kube-proxy's part of an instance target: the node DNATs the
// NodePort to the endpoint (and SNATs to itself unless the policy is
// Local), the pod answers, and the node sends the reply on towards back.
func (m *model) viaNode(svc *Service, client, via, ep Endpoint, sport, target uint16, back Endpoint) []Hop {
	src := via
	if svc.Local {
		src = client
	}
	hops := m.forward(Request, via, src.IP, ep, 0, target)
	if len(hops) > 0 {
		snat := fmt.Sprintf(", MASQUERADE to %s (%s)", via.IP, svc.masquerade())
		if svc.Local {
			snat = ", no SNAT (externalTrafficPolicy Local)"
		}
		hops[0].NAT = fmt.Sprintf("%s DNAT %s:%d -> %s:%d (%s -> %s)%s", via.Object, via.IP, svc.NodePort,
			ep.IP, target, svc.nodePorts(), svc.ExtChain, snat)
		for i := range hops {
			if !svc.Local {
				hops[i].SrcPort = 0
			} else {
				hops[i].SrcPort = sport
			}
		}
	}
	var reply []Hop
	if ep.Instance == via.Instance {
		reply = m.path(Reply, ep, via, target, 0)[:2]
	} else {
		reply = m.path(Reply, ep, via, target, 0)
	}
	for i := range reply {
		reply[i].Dst, reply[i].DstPort = src.IP, 0
		if svc.Local {
			reply[i].DstPort = sport
		}
	}
	hops = append(hops, reply...)
	out := m.path(Reply, Endpoint{Object: via.Object, IP: via.IP, MAC: via.MAC, Instance: via.Instance, Node: true}, back,
		svc.NodePort, sport)
	if len(out) > 0 {
		out[0].NAT = fmt.Sprintf("%s un-NAT: source %s:%d (conntrack)", via.Object, via.IP, svc.NodePort)
	}
	return append(hops, out...)
}

// frontIn is the client's packet to the load balancer node: across the VPC,
// or from the internet through the gateway's DNAT of the node's public IP.
func (m *model) frontIn(from, front Endpoint, node lb.Node, sport, lport uint16) []Hop {
	if from.Internet {
		return m.inbound(Request, from, front, node.Public, sport, lport)
	}
	return m.path(Request, from, front, sport, lport)
}

// frontOut is the node's answer to the client, SNATed to the node's public
// IP by the gateway when the client is on the internet.
func (m *model) frontOut(front, from Endpoint, node lb.Node, lport, sport uint16) []Hop {
	if from.Internet {
		return m.outbound(Reply, front, from, node.Public, lport, sport)
	}
	return m.path(Reply, front, from, lport, sport)
}

// SortedAddrs returns a map's addresses in order.
func SortedAddrs(m map[netip.Addr]string) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

func findTarget(g *lb.TargetGroup, object string) (lb.Target, bool) {
	for _, t := range g.Targets {
		if t.Object == object {
			return t, true
		}
	}
	return lb.Target{}, false
}

// deriveALB is C4: two TCP connections. The client's ends at the ALB node;
// the ALB opens its own from the node's address to the target pod. A path
// no rule matches gets the ALB's 404 and no second connection.
func (m *model) deriveALB(t *spec.Topology, w spec.Walk, e *Expectation, l *lb.LoadBalancer, node lb.Node, picks Picks) (*Expectation, error) {
	from, front, sport := e.From, lbEndpoint(l, node, node.IP), e.ClientPort
	e.Hops = m.frontIn(from, front, node, sport, 80)
	rule := l.Match(w.Path)
	if rule != nil && len(rule.Group.Targets) > 0 {
		if picks.Target == "" {
			// No target was reached: expect the first one, so the report
			// names the backend hops that never happened.
			picks.Target = rule.Group.Targets[0].Object
		}
		target, ok := findTarget(rule.Group, picks.Target)
		if !ok {
			return nil, fmt.Errorf("%s: target %q is not in %s", l.Owner, picks.Target, rule.Group.Name)
		}
		pod, err := endpointOf(t, target.Object)
		if err != nil {
			return nil, err
		}
		e.Endpoint = &pod
		back := m.path(Request, front, pod, 0, uint16(target.Port))
		which := fmt.Sprintf("rule %d %v", rule.Priority, rule.Paths)
		if rule == l.Default {
			which = fmt.Sprintf("no rule matches %s: the default action (the Ingress's defaultBackend)", w.Path)
		}
		back[0].NAT = fmt.Sprintf("%s (%s) proxies: %s -> %s; its own connection from %s to %s (X-Forwarded-For: %s)",
			l.Name, node.AZ, which, rule.Group.Name, node.IP, target, from.IP)
		e.Hops = append(e.Hops, back...)
		e.Hops = append(e.Hops, m.path(Reply, pod, front, uint16(target.Port), 0)...)
	}
	rep := m.frontOut(front, from, node, 80, sport)
	switch {
	case rule == nil:
		rep[0].NAT = fmt.Sprintf("%s: no rule matches %s: the default action answers 404", l.Name, w.Path)
	case len(rule.Group.Targets) == 0:
		rep[0].NAT = fmt.Sprintf("%s: rule %d -> %s, which has no registered targets: 503", l.Name, rule.Priority, rule.Group.Name)
	}
	return e, appendTo(e, rep)
}

func appendTo(e *Expectation, hops []Hop) error {
	e.Hops = append(e.Hops, hops...)
	return nil
}

// LBCandidates is every capture point of a load balancer walk: the client,
// the load balancer, every target and every endpoint behind them.
func LBCandidates(t *spec.Topology, w spec.Walk) ([]Point, map[netip.Addr]string, map[netip.Addr]string, error) {
	_, l, _, li, err := LBOf(t, w)
	if err != nil {
		return nil, nil, nil, err
	}
	targets, endpoints := map[netip.Addr]string{}, map[netip.Addr]string{}
	var ends []Endpoint
	if from, err := endpointOf(t, w.From); err == nil {
		ends = append(ends, from)
	}
	var gs []*lb.TargetGroup
	if l.Kind == lb.ALB {
		gs = l.Groups() // the rules' and the default backend's
	} else {
		gs = append(gs, li.Group)
	}
	for _, g := range gs {
		for _, tg := range g.Targets {
			targets[tg.IP] = tg.Object
			if e, err := endpointOf(t, tg.Object); err == nil {
				ends = append(ends, e)
			} else if t.Node(tg.Object) != nil {
				ends = append(ends, nodeEndpoint(t, tg.Object))
			}
		}
		if g.TargetType == lb.TargetInstance && l.Kind == lb.NLB {
			svc := ServiceOf(t, spec.Walk{Service: strings.TrimPrefix(l.Owner, "Service "), Port: w.Port,
				Protocol: strings.ToLower(li.Protocol)})
			if svc != nil {
				for ip, pod := range svc.Endpoints(t) {
					endpoints[ip] = pod
					if e, err := endpointOf(t, pod); err == nil {
						ends = append(ends, e)
					}
				}
			}
		}
	}
	pts := capturePoints(t, ends...)
	seen := map[Point]bool{}
	for _, p := range pts {
		seen[p] = true
	}
	for _, n := range l.Nodes {
		for _, p := range []Point{{l.Name, spec.ENIName(n.Index)}, {spec.RouterName, spec.RouterPortName(l.Name, n.Index)}} {
			if !seen[p] {
				pts = append(pts, p)
				seen[p] = true
			}
		}
	}
	return pts, targets, endpoints, nil
}
