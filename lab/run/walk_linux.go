//go:build linux

package run

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/capture"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/draw"
	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// Run is one walk run: its report and where its capture went.
type Run struct {
	Report *walk.Report
	Pcap   string
	// TrafficErr is set when the exchange itself failed (no answer).
	TrafficErr error
	// App is what the server app answered, when it answered.
	App *traffic.AppAnswer
	// Ladder is the run's ladder diagram, an HTML page beside the pcapng.
	Ladder string
	// Explain holds, by hop index, the kernel's decisions for that hop.
	Explain map[int][]string
	// Spread and Churn are set by those walk kinds instead of Report.
	Spread *Spread
	Churn  *Churn
	// NATEvidence is, per node that translated the flow, what the kernel
	// says it did: the KUBE-* chains whose counters moved and the
	// conntrack entry.
	NATEvidence []NATEvidence
	notes       []string
}

// NATEvidence is one node's record of a walk's translation.
type NATEvidence struct {
	Node      string
	Chains    []string // KUBE-* chains with a rule whose counter grew
	Conntrack []string // entries of the client's flow, as conntrack -L prints them
	// Translated: one of the flow's own conntrack entries on the node shows
	// a translation (DNAT or SNAT).
	Translated bool
	// NFT, in nftables mode, are the kube-proxy objects the walk's own
	// packets matched, from nft monitor trace (its rules keep no counters).
	NFT []string
	// Err is set when the counters could not be read.
	Err error
}

// Session holds a lab's open namespaces for a series of walk runs.
type Session struct {
	Lab  string
	Topo *spec.Topology
	// Explain traces every decision of the walks this session runs.
	Explain bool
	open    map[string]*ns.NS
	// nf is the backend the lab's rules were written with.
	nf netfilter.Backend
	// nftw traces the current walk's packets in nftables mode.
	nftw *nftWatch
}

// OpenSession loads a lab that is up.
func OpenSession(lab string) (*Session, error) {
	t, st, err := state.Load(lab)
	if err != nil {
		return nil, err
	}
	if !st.Complete {
		return nil, fmt.Errorf("lab %s was not completely built (up was interrupted): labctl down %s", lab, lab)
	}
	if st.Iptables != "" { // the backend the rules were written with, even if the file changed since
		t.Iptables = st.Iptables
	}
	return &Session{Lab: lab, Topo: t, open: map[string]*ns.NS{}, nf: netfilter.For(t.Iptables)}, nil
}

// NS opens (once) the namespace of a topology object.
func (s *Session) NS(object string) (*ns.NS, error) {
	if n, ok := s.open[object]; ok {
		return n, nil
	}
	n, err := ns.Open(spec.NSName(s.Lab, object))
	if err != nil {
		return nil, err
	}
	s.open[object] = n
	return n, nil
}

// Close releases the namespaces.
func (s *Session) Close() {
	s.nftw.stop()
	for _, n := range s.open {
		n.Close()
	}
}

// podFlow walks between pods, hosts and nodes, to a Service's ClusterIP
// or NodePort, and to cluster DNS.
type podFlow struct {
	s        *Session
	w        spec.Walk
	svc      *walk.Service
	client   walk.Endpoint
	dst      netip.AddrPort
	port     uint16
	natNodes []string
	before   map[string]string
	answer   string // what DNS answered
	picked   string // the endpoint the kernel picked (or the first, if none was reached)
	reached  bool
}

func (s *Session) newPodFlow(w spec.Walk) (*podFlow, error) {
	client, err := walk.EndpointOf(s.Topo, w.From)
	if err != nil {
		return nil, err
	}
	f := &podFlow{s: s, w: w, svc: walk.ServiceOf(s.Topo, w), client: client, port: traffic.RandomPort(), before: map[string]string{}}
	f.natNodes = s.natNodes(w, f.svc)
	return f, nil
}

func (f *podFlow) points() ([]walk.Point, error) {
	if f.svc != nil {
		f.dst = f.svc.Dest(f.s.Topo, f.w)
		return walk.CandidatePoints(f.s.Topo, f.w, f.svc), nil
	}
	e, err := walk.Derive(f.s.Topo, f.w, f.port, "")
	if err != nil {
		return nil, err
	}
	f.dst = netip.AddrPortFrom(e.To.IP, uint16(f.w.Port))
	return e.Points, nil
}

func (f *podFlow) prepare() (err error) {
	for _, n := range f.natNodes {
		if f.before[n], err = f.s.natSave(n); err != nil {
			return err
		}
	}
	if f.s.Topo.NFTablesMode() && f.svc != nil && len(f.natNodes) > 0 {
		sel := map[string]string{}
		for _, n := range f.natNodes {
			sel[n] = nftSelect(f.client.IP, f.dst, f.svc.Protocol)
		}
		f.s.nftw, err = f.s.watchNFT(sel, f.client.IP)
	}
	return err
}

func (f *podFlow) send(run *Run) (*walk.Classifier, error) {
	w := f.w
	token := traffic.NewToken()
	cl := &walk.Classifier{Proto: w.Protocol, Token: []byte(token)}
	src, err := f.s.NS(w.From)
	if err != nil {
		return nil, err
	}
	timeout := traffic.Timeout
	if w.Expect == "drop" {
		timeout = dropTimeout
	}
	switch w.Protocol {
	case "tcp", "udp":
		if f.port, err = traffic.FreePort(src, w.Protocol+"4", netip.Addr{}); err != nil {
			return nil, err
		}
	}
	switch {
	case w.Kind == spec.WalkDNS:
		cl.DNS = true
		first := f.port
		cl.DNSID, f.port, f.answer, run.TrafficErr = traffic.Resolve(src, f.port, f.dst, w.Query, cluster.SearchPath(f.s.podNamespace(w.From)))
		if f.port != first {
			run.notes = append(run.notes, "the resolver asked the search path's names first (ndots:5), each from a new port; "+
				"the hops below are the answered query's")
		}
	case w.Protocol == "icmp":
		run.TrafficErr = traffic.Ping(src, f.dst.Addr(), f.port, token)
	case w.Protocol == "tcp":
		run.App, run.TrafficErr = traffic.HTTPGet(src, f.client.IP, f.port, f.dst, token, timeout, "/")
	case w.Protocol == "udp":
		run.App, run.TrafficErr = traffic.UDPEcho(src, f.port, f.dst, token, timeout)
	}
	return cl, nil
}

func (f *podFlow) expect(run *Run, cl *walk.Classifier, pkts []walk.Packet) (*walk.Expectation, error) {
	f.s.nftw.stop() // the captures are drained: every traced packet is in
	if f.w.Protocol == "tcp" {
		cl.FindISN(&walk.Expectation{From: f.client, ClientPort: f.port}, pkts)
	}
	if f.svc != nil {
		eps := f.svc.Endpoints(f.s.Topo)
		if len(eps) == 0 {
			return nil, fmt.Errorf("walk %s: Service %s/%s has no endpoints (traffic: %v)", f.w.Name, f.svc.Namespace, f.svc.Name, run.TrafficErr)
		}
		f.picked = cl.Endpoint(pkts, eps)
		if f.reached = f.picked != ""; !f.reached {
			f.picked = eps[walk.SortedAddrs(eps)[0]] // nothing got past the DNAT: report against the first
		}
	}
	return walk.Derive(f.s.Topo, f.w, f.port, f.picked)
}

func (f *podFlow) azs() map[string]string { return walk.PortAZs(f.s.Topo, nil) }

func (f *podFlow) judge(run *Run, e *walk.Expectation, cl *walk.Classifier, pkts []walk.Packet) {
	w, r := f.w, run.Report
	r.Notes = append(r.Notes, run.notes...)
	for _, n := range f.natNodes {
		ev := f.s.natEvidence(n, f.before[n], FlowTuples(cl, pkts, n))
		if ev.Err != nil {
			r.Notes, r.Failed = append(r.Notes, ev.Err.Error()), true
		}
		run.NATEvidence = append(run.NATEvidence, ev)
	}
	switch {
	case w.Expect == "drop" && run.TrafficErr == nil:
		r.Notes = append(r.Notes, "traffic: answered, but this walk expects the flow to be dropped")
		r.Failed = true
	case w.Expect == "drop":
		r.Notes = append(r.Notes, "traffic: no answer, as expected ("+run.TrafficErr.Error()+")")
	case run.TrafficErr != nil:
		r.Notes = append(r.Notes, "traffic: "+run.TrafficErr.Error())
		r.Failed = true
	}
	if f.reached {
		r.Notes = append(r.Notes, "the kernel picked endpoint "+f.picked)
	}
	if run.App != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("%s's app saw the client as %s", run.App.Object, run.App.Remote))
	}
	if w.Kind == spec.WalkDNS && run.TrafficErr == nil {
		want := svcAddr(f.s.Topo, w.Query, f.s.podNamespace(w.From))
		r.Notes = append(r.Notes, fmt.Sprintf("%s resolved to %s (the Service's ClusterIP is %s)", w.Query, f.answer, want))
		if f.answer != want {
			r.Failed = true
		}
	}
}

// dropTimeout bounds a flow that a walk expects to be dropped.
const dropTimeout = time.Second

func (s *Session) podNamespace(object string) string {
	if p := s.Topo.Pod(object); p != nil {
		return p.Namespace
	}
	return spec.DefaultNamespace
}

// svcAddr is the ClusterIP a name resolves to under a pod's search path.
func svcAddr(t *spec.Topology, name, namespace string) string {
	recs := cluster.DNSRecords(t)
	for _, cand := range traffic.SearchNames(name, cluster.SearchPath(namespace)) {
		if ip, ok := recs[cand]; ok {
			return ip.String()
		}
	}
	return ""
}

// spread opens many connections to a Service and counts which endpoint
// answered each (walk B1's "every endpoint is reached").
func (s *Session) spread(w spec.Walk) (*Run, error) {
	if w.LoadBalancer != "" {
		return s.lbSpread(w)
	}
	svc := walk.ServiceOf(s.Topo, w)
	src, from, err := s.source(w)
	if err != nil {
		return nil, err
	}
	sp := &Spread{Counts: map[string]int{}, Connections: w.Connections}
	dst := svc.Dest(s.Topo, w)
	// Each request carries its own walk token, so the router's capture
	// tells which requests crossed an AZ.
	sp.CrossAZ, sp.CrossedRequests, err = s.crossAZDuring(nil, func() {
		for i := 0; i < w.Connections; i++ {
			a, err := traffic.HTTPGet(src, from.IP, 0, dst, traffic.NewToken(), traffic.Timeout, "/")
			if err != nil {
				sp.Failures, sp.LastErr = sp.Failures+1, err
				continue
			}
			sp.Counts[a.Object]++
		}
	})
	if err != nil {
		return nil, err
	}
	run := &Run{Spread: sp}
	if p := s.Topo.Pod(w.From); p != nil && w.Via == "" {
		for _, csp := range cluster.Endpoints(s.Topo) {
			if csp.Service.Namespace == svc.Namespace && csp.Service.Name == svc.Name && uint16(csp.Port.Port) == svc.Port &&
				strings.EqualFold(string(csp.Port.Protocol), svc.Protocol) {
				sp.Endpoints, sp.Rule, sp.Notes = podSpreadEndpoints(s.Topo, csp, p.Node)
			}
		}
	} else {
		for _, pod := range svc.Endpoints(s.Topo) {
			p := s.Topo.Pod(pod)
			sp.Endpoints = append(sp.Endpoints, SpreadEndpoint{Pod: pod, Node: p.Node, AZ: cluster.NodeZone(s.Topo, p.Node),
				Local: p.Node == from.Instance})
		}
	}
	sort.Slice(sp.Endpoints, func(i, j int) bool { return sp.Endpoints[i].Pod < sp.Endpoints[j].Pod })
	return run, nil
}

// Spread is the outcome of a spread walk.
type Spread struct {
	Connections, Failures int
	Counts                map[string]int
	Endpoints             []SpreadEndpoint
	LastErr               error
	// ZoneOnly is set for a load balancer node without cross-zone: only the
	// endpoints in its AZ may answer, and all of them must.
	ZoneOnly bool
	// Rule says which endpoints may answer when not all may (those are
	// Excluded): topology hints, a traffic policy, cross-zone off.
	Rule string
	// Notes explain what kept every endpoint in play (hints refused, the
	// fallback when no endpoint is hinted for the client's zone).
	Notes []string
	// CrossAZ is what the requests' connections moved between AZs, seen at
	// the VPC router; CrossedRequests counts the requests that crossed.
	CrossAZ         walk.CrossAZ
	CrossedRequests int
}

// Answered is the number of requests that got an answer.
func (s *Spread) Answered() int { return s.Connections - s.Failures }

// CrossShare is the share of answered requests that crossed an AZ.
func (s *Spread) CrossShare() float64 {
	if s.Answered() == 0 {
		return 0
	}
	return float64(s.CrossedRequests) / float64(s.Answered())
}

// MonthlyCost is the cross-AZ charge of these requests' bytes, per
// request, at walk.SpreadRequestRate requests a second for a month.
func (s *Spread) MonthlyCost() float64 {
	if s.Answered() == 0 {
		return 0
	}
	return walk.MonthlyCost(float64(s.CrossAZ.Bytes)/float64(s.Answered()), walk.SpreadRequestRate)
}

// SpreadEndpoint is one endpoint of a spread walk.
type SpreadEndpoint struct {
	Pod, Node string
	AZ        string
	Local     bool // on the client's node, or in the load balancer node's AZ
	// Excluded: the path may not send to it (see Spread.Rule); it must
	// never answer.
	Excluded bool
}

// Passed: no connection failed and every endpoint that may answer did, at
// least once; no Excluded endpoint answered.
func (s *Spread) Passed() bool {
	if s.Failures > 0 || len(s.Endpoints) == 0 {
		return false
	}
	for _, e := range s.Endpoints {
		reached := s.Counts[e.Pod] > 0
		if e.Excluded {
			if reached {
				return false
			}
			continue
		}
		if !reached {
			return false
		}
	}
	return true
}

// Passed reports whether the run proved its walk.
func (r *Run) Passed() bool {
	switch {
	case r.Spread != nil:
		return r.Spread.Passed()
	case r.Churn != nil:
		return r.Churn.Passed()
	}
	return r.Report.Passed()
}

// writePcap writes the run's frames, one interface block per capture point,
// with each flow packet's leg as a frame comment.
func writePcap(dir, lab, walkName string, e *walk.Expectation, cl *walk.Classifier, frames []capture.Frame, pkts []walk.Packet) (string, error) {
	name := fmt.Sprintf("%s-%s-%s.pcapng", lab, walkName, time.Now().UTC().Format("20060102T150405.000"))
	// root writes into a directory its caller may own: never through a
	// name someone planted there (state.CreateIn).
	f, err := state.CreateIn(dir, strings.ReplaceAll(name, ":", ""), 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	path := f.Name()
	pw, err := capture.NewPcapngWriter(f, fmt.Sprintf("labctl walk %s of lab %s: %s", walkName, lab, e.Walk.Title))
	if err != nil {
		return "", err
	}
	ids := map[walk.Point]uint32{}
	for _, pt := range e.Points {
		id, err := pw.AddInterface(pt.String(), "lab "+lab+", namespace "+spec.NSName(lab, pt.Object))
		if err != nil {
			return "", err
		}
		ids[pt] = id
	}
	for i, fr := range frames {
		comment := ""
		if leg := cl.Leg(&pkts[i]); leg != "" {
			comment = "labctl: " + string(leg)
		}
		if err := pw.WritePacket(ids[fr.Point], fr.Time, fr.Data, fr.Len, fr.Dir == walk.Out, comment); err != nil {
			return "", err
		}
	}
	return path, pw.Flush()
}

// natNodes are the nodes whose kube-proxy rules translate a Service walk:
// the client pod's node for a ClusterIP, the via node for a NodePort.
func (s *Session) natNodes(w spec.Walk, svc *walk.Service) []string {
	switch {
	case svc == nil:
		return nil
	case w.Via != "":
		return []string{w.Via}
	case s.Topo.Pod(w.From) != nil:
		return []string{s.Topo.Pod(w.From).Node}
	}
	return nil
}

// natSave is `iptables-save -c` in a node: nat for the translation, filter
// for drops. One call for every table costs less than one per table: the
// others (mangle's canary, raw) are nearly empty, and a process is ~2 ms.
func (s *Session) natSave(node string) (string, error) {
	h, err := s.NS(node)
	if err != nil {
		return "", err
	}
	return s.nf.Save(h, true)
}

// natEvidence reads what a node's kernel recorded of the walk's flow: the
// KUBE-* chains whose counters moved since before (shown, never judged:
// health checks and other walks move them too) and the node's conntrack
// entries of the flow's own tuples (flow), which say whether the node
// translated it.
func (s *Session) natEvidence(node, before string, flow map[Tuple]bool) NATEvidence {
	ev := NATEvidence{Node: node}
	if after, err := s.natSave(node); err == nil {
		ev.Chains = netfilter.TraversalOrder(netfilter.MovedChains(before, after, "KUBE-"))
	} else {
		ev.Err = fmt.Errorf("reading %s's counters: %w", node, err)
	}
	if s.nftw != nil {
		ev.NFT = NFTObjects(FlowNFT(s.nftw.tracedAt(node), flow))
	}
	h, err := s.NS(node)
	if err != nil {
		return ev
	}
	flows, err := h.NL.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		ev.Conntrack = []string{"(conntrack table not readable: " + err.Error() + ")"}
		return ev
	}
	var entries []Entry
	for _, f := range flows {
		entries = append(entries, entryOf(f))
	}
	for _, e := range FlowEntries(entries, flow) {
		ev.Conntrack = append(ev.Conntrack, e.String())
		ev.Translated = ev.Translated || e.Translated()
	}
	return ev
}

// entryOf is a kernel conntrack entry as the pure checks read it.
func entryOf(f *netlink.ConntrackFlow) Entry {
	proto := map[uint8]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMP: "icmp"}[f.Forward.Protocol]
	t := func(x netlink.IPTuple) Tuple {
		a, _ := netip.AddrFromSlice(x.SrcIP.To4())
		b, _ := netip.AddrFromSlice(x.DstIP.To4())
		return Tuple{proto, netip.AddrPortFrom(a, x.SrcPort), netip.AddrPortFrom(b, x.DstPort)}
	}
	return Entry{Orig: t(f.Forward), Reply: t(f.Reverse)}
}

// writeLadder puts the run's ladder diagram beside its pcapng.
func writeLadder(run *Run, w spec.Walk, asides []walk.Aside) (string, error) {
	path := strings.TrimSuffix(run.Pcap, ".pcapng") + ".html"
	title := fmt.Sprintf("walk %s: %s", w.Name, w.Title)
	f, err := state.CreateIn(filepath.Dir(path), filepath.Base(path), 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(draw.Ladder(run.Report, title, filepath.Base(run.Pcap), asides...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}

// observe opens the captures of a walk run and, with Explain, the traces:
// both are ready before the run sends its first packet.
func (s *Session) observe(pts []walk.Point) (*capture.Set, *tracer, error) {
	caps, err := capture.OpenAll(s.NS, pts)
	if err != nil {
		return nil, nil, err
	}
	if !s.Explain {
		return caps, nil, nil
	}
	tr, err := s.startTrace(deciders(s.Topo, pts))
	if err != nil {
		caps.Close()
		return nil, nil, err
	}
	crash.Point(context.Background(), "walk-traced") // a walk --explain killed with its TRACE rules in
	return caps, tr, nil
}

// Churn is the outcome of a churn walk (B4).
type Churn struct {
	Change        *churn.PodChange
	Before, After map[string]int
	Failures      int
	LastErr       error
	Connections   int
}

// Passed: every request was answered, none after the change by the deleted
// pod, and the new pod took its share.
func (c *Churn) Passed() bool { return c.Why() == "" }

// Why is the reason a churn walk failed, empty when it passed.
func (c *Churn) Why() string {
	switch {
	case c.Change == nil:
		return "no pod was deleted"
	case c.Failures > 0:
		return fmt.Sprintf("%d of the requests failed, the last with: %v", c.Failures, c.LastErr)
	case c.After[c.Change.Deleted.Name] > 0:
		return fmt.Sprintf("the deleted pod %s still answered %d requests after the change", c.Change.Deleted.Name, c.After[c.Change.Deleted.Name])
	case c.After[c.Change.Started.Name] == 0:
		return fmt.Sprintf("the new pod %s answered none of the %d requests after the change", c.Change.Started.Name, c.Connections)
	}
	return ""
}

// source is a walk's client: its namespace and its end (a pod or a host).
func (s *Session) source(w spec.Walk) (*ns.NS, walk.Endpoint, error) {
	src, err := s.NS(w.From)
	if err != nil {
		return nil, walk.Endpoint{}, err
	}
	from, err := walk.EndpointOf(s.Topo, w.From)
	return src, from, err
}

// churn is walk B4: requests to a Service before and after one of its
// Deployment's pods is deleted and replaced.
func (s *Session) churn(w spec.Walk) (*Run, error) {
	svc := walk.ServiceOf(s.Topo, w)
	src, from, err := s.source(w)
	if err != nil {
		return nil, err
	}
	ask := func(n int, counts map[string]int, c *Churn) {
		f, err := traffic.CountAnswers(src, from.IP, svc.Dest(s.Topo, w), n, counts)
		if f > 0 {
			c.Failures, c.LastErr = c.Failures+f, err
		}
	}
	c := &Churn{Before: map[string]int{}, After: map[string]int{}, Connections: w.Connections}
	ask(w.Connections/2, c.Before, c)
	// The victim is picked under the lab's lock from the pods as they are
	// then: another walk's churn may have replaced pods since this session
	// loaded the lab, and two churn walks must not pick the same pod.
	pick := func(t *spec.Topology) (string, error) {
		eps := walk.ServiceOf(t, w).Endpoints(t)
		for _, ip := range walk.SortedAddrs(eps) {
			if p := t.Pod(eps[ip]); p != nil && strings.HasPrefix(p.Manifest, "Deployment ") && p.Name != w.From && p.Phase == "" {
				if h, ok := s.open[p.Name]; ok { // an open handle would keep the old pod's namespace alive
					h.Close()
					delete(s.open, p.Name)
				}
				return p.Name, nil
			}
		}
		return "", fmt.Errorf("walk %s: no endpoint of %s/%s belongs to a Deployment", w.Name, svc.Namespace, svc.Name)
	}
	if c.Change, err = churn.DeletePodOf(context.Background(), s.Lab, pick); err != nil {
		return nil, err
	}
	t, _, err := state.Load(s.Lab)
	if err != nil {
		return nil, err
	}
	s.Topo = t
	ask(w.Connections, c.After, c)
	return &Run{Churn: c}, nil
}
