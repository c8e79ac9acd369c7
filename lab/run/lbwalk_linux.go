//go:build linux

package run

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/capture"
	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// lbFlow walks through a load balancer (C1-C4, D1): captures at the
// client, the load balancer, every target and every endpoint; a request to
// the LB node of the walk's AZ (found through Route 53 for a walk with a
// dnsName); then the hops derived from the target and endpoint the capture
// shows were picked.
type lbFlow struct {
	s                  *Session
	w                  spec.Walk
	pts                []walk.Point
	targets, endpoints map[netip.Addr]string
	l                  *lb.LoadBalancer
	node               lb.Node
	li                 *lb.Listener
	client             walk.Endpoint
	before             map[string]string
	port               uint16
	token              string
	dst                netip.AddrPort
	dnsNotes           []string
	dnsFailed          bool
	status             int
	backend            *walk.Conn
	backendIdle        time.Duration
	backendErr         error
	picks              walk.Picks
	// The keep-alive step of an ALB walk whose targets close idle
	// connections (primeKeepAlive): the targets' longest keep-alive, how
	// many were primed, when priming ended and how long to wait after it.
	keepAlive, wait time.Duration
	primed          int
	primedAt        time.Time
	keepAliveErr    error
}

func (s *Session) newLBFlow(w spec.Walk) (*lbFlow, error) {
	f := &lbFlow{s: s, w: w, before: map[string]string{}, backendIdle: -1}
	var err error
	if f.pts, f.targets, f.endpoints, err = walk.LBCandidates(s.Topo, w); err != nil {
		return nil, err
	}
	if _, f.l, f.node, f.li, err = walk.LBOf(s.Topo, w); err != nil {
		return nil, err
	}
	if f.client, err = walk.EndpointOf(s.Topo, w.From); err != nil {
		return nil, err
	}
	if f.l.Kind == lb.ALB {
		if err := f.primeKeepAlive(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// primeKeepAlive is an ALB walk's first step when the rule's targets close
// idle connections (their apps' keep-alive, agent.SetKeepAlive): a request
// through the walk's ALB node to every target, so the ALB holds a
// kept-alive connection to each; send then waits past the keep-alive but
// under the ALB's idle timeout (walk.KeepAliveWait) and sends the walk's
// request on one of them. It runs before the captures start, so the
// priming's packets on the connection the walk reuses are not taken for
// the walk's; the target's FIN, a keep-alive later, is captured. A round
// with a failed request (a connection that died under it) is primed again.
func (f *lbFlow) primeKeepAlive() error {
	rule := f.l.Match(f.w.Path)
	if rule == nil || len(rule.Group.Targets) == 0 {
		return nil
	}
	for _, t := range rule.Group.Targets {
		k, err := agent.KeepAliveOf(f.s.Lab, t.Object)
		if err != nil {
			// No app server: the walk fails on its own, saying so.
			f.keepAliveErr = fmt.Errorf("the keep-alive of %s is unknown: %w", t.Object, err)
			return nil
		}
		f.keepAlive = max(f.keepAlive, k)
	}
	if f.wait = walk.KeepAliveWait(f.keepAlive, agent.ALBIdleTimeout); f.wait == 0 {
		return nil
	}
	src, err := f.s.NS(f.w.From)
	if err != nil {
		return err
	}
	dst := netip.AddrPortFrom(f.node.IP, uint16(f.li.Port))
	if f.w.DNSName != "" {
		dst = netip.AddrPortFrom(f.node.Public, uint16(f.li.Port)) // the address resolvePublic has the client use
	}
	for round := 0; round < 4; round++ {
		ok := 0
		for range rule.Group.Targets {
			if _, status, err := traffic.HTTPDo(src, f.client.IP, 0, dst, "", traffic.Timeout, f.w.Path); err == nil && status == 200 {
				ok++
			}
		}
		f.primed, f.primedAt = ok, time.Now()
		if ok == len(rule.Group.Targets) {
			break
		}
	}
	return nil
}

func (f *lbFlow) points() ([]walk.Point, error) { return f.pts, nil }

// prepare reads every node's counters, to show which kube-proxy chains the
// flow used (none, for ip targets). In nftables mode, whose rules keep no
// counters, it traces the flow's packets to the NodePort of every instance
// target instead (nftTargets), as a NodePort walk does on its node.
func (f *lbFlow) prepare() (err error) {
	for _, n := range f.s.Topo.Nodes {
		if f.before[n.Name], err = f.s.natSave(n.Name); err != nil {
			return err
		}
	}
	if sel, src := f.nftTargets(); len(sel) > 0 {
		f.s.nftw, err = f.s.watchNFT(sel, src)
	}
	return err
}

// nftTargets are, for an NLB with instance targets on nodes whose
// kube-proxy runs in nftables mode, the nft selection of the flow's
// packets at each target node: from the address the NLB sends from (the
// client's, preserved, or its node's) to the target's IP and NodePort.
func (f *lbFlow) nftTargets() (map[string]string, netip.Addr) {
	g := f.li.Group
	if !f.s.Topo.NFTablesMode() || f.l.Kind != lb.NLB || g == nil || g.TargetType != lb.TargetInstance {
		return nil, netip.Addr{}
	}
	src := f.node.IP // the NLB's SNAT (deriveLB)
	if g.PreserveClientIP {
		src = f.client.IP
	}
	sel := map[string]string{}
	for _, t := range g.Targets {
		if f.s.Topo.Node(t.Object) != nil {
			sel[t.Object] = nftSelect(src, netip.AddrPortFrom(t.IP, uint16(t.Port)), "tcp")
		}
	}
	return sel, src
}

func (f *lbFlow) send(run *Run) (*walk.Classifier, error) {
	s, w, l := f.s, f.w, f.l
	src, err := s.NS(w.From)
	if err != nil {
		return nil, err
	}
	if f.port, err = traffic.FreePort(src, "tcp4", f.client.IP); err != nil {
		return nil, err
	}
	f.token = traffic.NewToken()
	f.dst = netip.AddrPortFrom(f.node.IP, uint16(f.li.Port))
	if w.DNSName != "" {
		dnsPort, err := traffic.FreePort(src, "udp4", netip.Addr{})
		if err != nil {
			return nil, err
		}
		pub, notes, ok := s.resolvePublic(w, src, dnsPort, l, f.node)
		f.dnsNotes, f.dnsFailed = notes, !ok
		f.dst = netip.AddrPortFrom(pub, uint16(f.li.Port))
	}
	path := "/"
	timeout := traffic.Timeout
	if l.Kind == lb.ALB {
		path = w.Path
		// Long enough to see the ALB give up on a silent target (504).
		timeout = agent.ALBConnectTimeout + agent.ALBIdleTimeout + traffic.Timeout
	}
	if f.wait > 0 {
		time.Sleep(time.Until(f.primedAt.Add(f.wait)))
	}
	run.App, f.status, run.TrafficErr = traffic.HTTPDo(src, f.client.IP, f.port, f.dst, f.token, timeout, path)
	var backend *walk.Conn
	if l.Kind == lb.ALB {
		f.backend, f.backendIdle, f.backendErr = agent.ALBConn(s.Lab, f.token)
		backend = f.backend
		if f.wait > 0 && f.backendIdle >= 0 {
			// A primed connection's own earlier packets (its target's FIN)
			// are in the capture: the flow is the segments with the
			// walk's token, and the 502 to the client. The FIN and RST
			// are named in the notes (walk.KeptAliveRace).
			backend = nil
		}
	}
	return &walk.Classifier{Proto: "tcp", Token: []byte(f.token), HTTP: l.Kind == lb.ALB, ClientPort: f.port, Backend: backend}, nil
}

func (f *lbFlow) expect(run *Run, cl *walk.Classifier, pkts []walk.Packet) (*walk.Expectation, error) {
	f.s.nftw.stop() // the captures are drained: every traced packet is in
	if !cl.HTTP {
		cl.FindISN(&walk.Expectation{From: f.client, ClientPort: f.port}, pkts)
	}
	f.picks = walk.Picks{Target: cl.Endpoint(pkts, f.targets), Endpoint: cl.Endpoint(pkts, f.endpoints)}
	e, err := walk.Derive(f.s.Topo, f.w, f.port, f.picks.Endpoint, f.picks)
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w (traffic: %v)", f.w.Name, err, run.TrafficErr)
	}
	return e, nil
}

func (f *lbFlow) azs() map[string]string {
	lbs, _ := lb.Build(f.s.Topo)
	return walk.PortAZs(f.s.Topo, lbs)
}

func (f *lbFlow) judge(run *Run, e *walk.Expectation, cl *walk.Classifier, pkts []walk.Packet) {
	s, w, l, node := f.s, f.w, f.l, f.node
	notes := append(f.dnsNotes, fmt.Sprintf("%s, %s, node %s (%s); the client sent to %s", l.Owner, l.Kind, node.AZ, node.IP, f.dst))
	switch {
	case f.backendErr != nil:
		notes = append(notes, "the ALB's connection to the target is unknown: "+f.backendErr.Error())
	case f.backend != nil && f.backendIdle >= 0:
		notes = append(notes, fmt.Sprintf("the ALB's connection to the target: %s -> %s, kept alive from an earlier request (idle %v)",
			f.backend.Src, f.backend.Dst, f.backendIdle))
	case f.backend != nil:
		notes = append(notes, fmt.Sprintf("the ALB's connection to the target: %s -> %s, new", f.backend.Src, f.backend.Dst))
	}
	if f.keepAliveErr != nil {
		notes = append(notes, "keep-alive: "+f.keepAliveErr.Error())
	}
	if f.wait > 0 {
		notes = append(notes, fmt.Sprintf("keep-alive: the targets close connections idle %v (their apps' keep-alive), the ALB after %v: "+
			"the walk primed a kept-alive connection to %d targets and sent its request %v later", f.keepAlive, agent.ALBIdleTimeout, f.primed, f.wait))
		if f.backend != nil && f.backendIdle >= 0 {
			notes = append(notes, walk.KeptAliveRace(*f.backend, f.targets[f.backend.Dst.Addr()], l.Name, pkts)...)
		}
	}
	run.Report.Failed = run.Report.Failed || f.dnsFailed
	if f.picks.Target != "" {
		notes = append(notes, "the load balancer picked target "+f.picks.Target)
	}
	if f.picks.Endpoint != "" && f.picks.Endpoint != f.picks.Target {
		notes = append(notes, "kube-proxy on "+f.picks.Target+" picked endpoint "+f.picks.Endpoint)
	}
	switch {
	case w.Expect == "drop" && run.TrafficErr == nil:
		notes = append(notes, "traffic: answered, but this walk expects the connection to time out")
		run.Report.Failed = true
	case w.Expect == "drop" && !traffic.IsTimeout(run.TrafficErr):
		notes = append(notes, "traffic: "+run.TrafficErr.Error()+", but this walk expects the connection to time out")
		run.Report.Failed = true
	case w.Expect == "drop":
		notes = append(notes, "traffic: no answer, as expected ("+run.TrafficErr.Error()+")")
	case run.TrafficErr != nil:
		notes = append(notes, "traffic: "+run.TrafficErr.Error())
		run.Report.Failed = true
	case run.App != nil:
		notes = append(notes, fmt.Sprintf("%s's app saw the client as %s", run.App.Object, run.App.Remote))
		if xff := run.App.Headers["X-Forwarded-For"]; len(xff) > 0 {
			notes = append(notes, "X-Forwarded-For: "+xff[0])
		}
	default:
		notes = append(notes, fmt.Sprintf("the load balancer answered HTTP %d", f.status))
		// Without a pod's answer only two are expected, as an ALB gives them:
		// 404 for a path no rule matches, 503 for a rule whose target group
		// has no registered targets. Anything else (502, 504) fails the walk.
		rule := l.Match(w.Path)
		expected := l.Kind == lb.ALB && ((rule == nil && f.status == 404) ||
			(rule != nil && len(rule.Group.Targets) == 0 && f.status == 503))
		if !expected {
			run.Report.Failed = true
		}
	}
	ipTargets := f.li.Group != nil && f.li.Group.TargetType == lb.TargetIP || l.Kind == lb.ALB
	for _, n := range s.Topo.Nodes {
		ev := s.natEvidence(n.Name, f.before[n.Name], FlowTuples(cl, pkts, n.Name))
		// The chains are shown for the nodes on the path; with instance
		// targets every node's NodePort chains also count the NLB's health
		// checks, so a counter says nothing of this flow by itself.
		if n.Name == f.picks.Target || (e.Endpoint != nil && e.Endpoint.Instance == n.Name) || ev.Translated {
			run.NATEvidence = append(run.NATEvidence, ev)
		}
		// With ip targets the load balancer reaches the pod itself: no node
		// translates the flow, which the flow's own conntrack entries show.
		if ipTargets && ev.Translated {
			notes = append(notes, fmt.Sprintf("ip targets, yet %s translated the flow: %v", n.Name, ev.Conntrack))
			run.Report.Failed = true
		}
	}
	if ipTargets && !run.Report.Failed {
		notes = append(notes, "no node translated the flow (its conntrack entries on every node it crossed are untranslated)")
	}
	run.Report.Notes = append(run.Report.Notes, notes...)
}

// collect ends a run's observation: its captured frames, also decoded, and with
// --explain each namespace's traced packets.
func collect(caps *capture.Set, tr *tracer) ([]capture.Frame, []walk.Packet, map[string][]*TracedPacket, error) {
	frames, err := caps.Drain()
	if err != nil {
		return nil, nil, nil, err
	}
	var traces map[string][]*TracedPacket
	if tr != nil {
		traces = tr.stop()
	}
	return frames, decodeFrames(frames), traces, nil
}

func decodeFrames(frames []capture.Frame) []walk.Packet {
	pkts := make([]walk.Packet, len(frames))
	for i, f := range frames {
		pkts[i] = walk.Decode(f.Data)
		pkts[i].Point, pkts[i].Dir, pkts[i].Time, pkts[i].Frame = f.Point, f.Dir, f.Time, i+1
	}
	return pkts
}

// lbSpread sends many requests to one load balancer node and counts which
// pods answered: with ip targets and cross-zone on every target of every
// AZ answers, with it off only those in the node's AZ; with instance
// targets, the pods the reachable nodes' kube-proxy sends to (see
// lbSpreadEndpoints).
func (s *Session) lbSpread(w spec.Walk) (*Run, error) {
	_, l, node, li, err := walk.LBOf(s.Topo, w)
	if err != nil {
		return nil, err
	}
	g := li.Group
	path := "/"
	if l.Kind == lb.ALB {
		r := l.Match(w.Path)
		if r == nil {
			return nil, fmt.Errorf("walk %s: no rule of %s matches %s", w.Name, l.Owner, w.Path)
		}
		g, path = r.Group, w.Path
	}
	src, err := s.NS(w.From)
	if err != nil {
		return nil, err
	}
	client, err := walk.EndpointOf(s.Topo, w.From)
	if err != nil {
		return nil, err
	}
	sp := &Spread{Counts: map[string]int{}, Connections: w.Connections, ZoneOnly: !g.CrossZone}
	dst := netip.AddrPortFrom(node.IP, uint16(li.Port))
	m, _ := lb.Build(s.Topo)
	sp.CrossAZ, sp.CrossedRequests, err = s.crossAZDuring(m, func() {
		for i := 0; i < w.Connections; i++ {
			a, _, err := traffic.HTTPDo(src, client.IP, 0, dst, traffic.NewToken(), traffic.Timeout, path)
			if err != nil || a == nil {
				sp.Failures, sp.LastErr = sp.Failures+1, err
				continue
			}
			sp.Counts[a.Object]++
		}
	})
	if err != nil {
		return nil, err
	}
	sp.Endpoints, sp.Rule = lbSpreadEndpoints(s.Topo, l, g, node)
	return &Run{Spread: sp}, nil
}

// resolvePublic is D1's first step: the client asks the internet's
// authoritative DNS for the walk's name, which must answer, TTL 60, the
// public IP of every node of the load balancer that is in DNS given the
// target health the app server recorded (lb.LoadBalancer.InDNS). The client
// picks the node of the walk's AZ, even one out of DNS (as a client that
// cached an older answer would); the DNS step then fails, saying why.
func (s *Session) resolvePublic(w spec.Walk, src *ns.NS, port uint16, l *lb.LoadBalancer, node lb.Node) (netip.Addr, []string, bool) {
	server := netip.AddrPortFrom(s.Topo.Internet.DNS.IP, 53)
	var (
		in          []lb.Node
		out         map[string]string
		answers     []netip.Addr
		ttl         uint32
		want        map[netip.Addr]bool
		wantList    []netip.Addr
		answerMatch bool
	)
	// A health change between reading the record and the query would
	// show as a mismatch; the second try sees it settled.
	for try := 0; try < 2 && !answerMatch; try++ {
		health, err := agent.ReadHealth(s.Lab)
		if err != nil {
			return node.Public, []string{"dns: the load balancers' target health: " + err.Error()}, false
		}
		in, out = l.InDNS(func(g *lb.TargetGroup, t lb.Target) bool {
			return health[g.Name+"/"+t.String()].State == agent.StateHealthy
		})
		if answers, ttl, err = traffic.QueryA(src, port, server, w.DNSName); err != nil {
			return node.Public, []string{"dns: " + err.Error()}, false
		}
		want, wantList = map[netip.Addr]bool{}, nil
		for _, n := range in {
			want[n.Public] = true
			wantList = append(wantList, n.Public)
		}
		answerMatch = len(answers) == len(want)
		for _, a := range answers {
			answerMatch = answerMatch && want[a]
		}
	}
	ok := answerMatch && ttl == 60 && want[node.Public]
	what := "every node's public IP"
	if len(out) > 0 {
		what = fmt.Sprintf("the nodes in DNS: %v", wantList)
	}
	notes := []string{fmt.Sprintf("dns: %s answered %s with %v, TTL %d (want %s, TTL 60); the client picks %s (%s)",
		s.Topo.Internet.DNS.Name, w.DNSName, answers, ttl, what, node.Public, node.AZ)}
	for _, n := range l.Nodes {
		if why, gone := out[n.AZ]; gone {
			notes = append(notes, fmt.Sprintf("dns: the node in %s (%s) is out of DNS: %s", n.AZ, n.Public, why))
		}
	}
	if !want[node.Public] {
		notes = append(notes, fmt.Sprintf("dns: the walk's node in %s is not in DNS; only a client holding an older answer still sends to it", node.AZ))
	}
	return node.Public, notes, ok
}
