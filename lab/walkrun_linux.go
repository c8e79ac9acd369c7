//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/capture"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/draw"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// trafficTimeout bounds one exchange. Expiry is a functional failure (the
// path is broken), never a speed check: a working path answers in well
// under a millisecond.
const trafficTimeout = 3 * time.Second

// Run is one walk run: its report and where its capture went.
type Run struct {
	Report *walk.Report
	Pcap   string
	// TrafficErr is set when the exchange itself failed (no answer).
	TrafficErr error
	// App is what the server app answered, when it answered.
	App *AppAnswer
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
	// Err is set when the counters could not be read: then Chains says
	// nothing, and a walk that relies on it fails.
	Err error
}

// Session holds a lab's open namespaces for a series of walk runs.
type Session struct {
	Lab  string
	Topo *spec.Topology
	// Explain traces every decision of the walks this session runs.
	Explain bool
	open    map[string]*ns.NS
}

// OpenSession loads a lab that is up.
func OpenSession(lab string) (*Session, error) {
	t, st, err := Load(lab)
	if err != nil {
		return nil, err
	}
	if !st.Complete {
		return nil, fmt.Errorf("lab %s was not completely built (up was interrupted): labctl down %s", lab, lab)
	}
	if st.Iptables != "" { // the backend the rules were written with, even if the file changed since
		t.Iptables = st.Iptables
	}
	return &Session{Lab: lab, Topo: t, open: map[string]*ns.NS{}}, nil
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
	for _, n := range s.open {
		n.Close()
	}
}

// Walk runs one walk: captures at every point, real traffic from the
// walk's source, and a check of every hop. The pcapng goes to outDir.
func (s *Session) Walk(w spec.Walk, outDir string) (*Run, error) {
	if w.Kind == spec.WalkSpread {
		return s.spread(w)
	}
	if w.Kind == spec.WalkChurn {
		return s.churn(w)
	}
	if w.LoadBalancer != "" {
		return s.lbWalk(w, outDir)
	}
	port := randomPort()
	svc := walk.ServiceOf(s.Topo, w)
	var pts []walk.Point
	var dst netip.AddrPort
	client, err := walk.EndpointOf(s.Topo, w.From)
	if err != nil {
		return nil, err
	}
	if svc != nil {
		pts, dst = walk.CandidatePoints(s.Topo, w, svc), svc.Dest(s.Topo, w)
	} else {
		e, err := walk.Derive(s.Topo, w, port, "")
		if err != nil {
			return nil, err
		}
		pts, dst = e.Points, netip.AddrPortFrom(e.To.IP, uint16(w.Port))
	}
	caps, tr, err := s.observe(pts)
	if err != nil {
		return nil, err
	}
	defer caps.Close()
	if tr != nil {
		defer tr.stop() // on an early return: the TRACE rules and monitors go
	}
	natNodes := s.natNodes(w, svc)
	before := map[string]string{}
	for _, n := range natNodes {
		if before[n], err = s.natSave(n); err != nil {
			return nil, err
		}
	}

	token := newToken()
	cl := &walk.Classifier{Proto: w.Protocol, Token: []byte(token)}
	run := &Run{}
	src, err := s.NS(w.From)
	if err != nil {
		return nil, err
	}
	timeout := trafficTimeout
	if w.Expect == "drop" {
		timeout = dropTimeout
	}
	var answer string
	switch w.Protocol {
	case "tcp", "udp":
		if port, err = freePort(src, w.Protocol+"4", netip.Addr{}); err != nil {
			return nil, err
		}
	}
	switch {
	case w.Kind == spec.WalkDNS:
		cl.DNS = true
		first := port
		cl.DNSID, port, answer, run.TrafficErr = resolve(src, port, dst, w.Query, cluster.SearchPath(s.podNamespace(w.From)))
		if port != first {
			run.notes = append(run.notes, "the resolver asked the search path's names first (ndots:5), each from a new port; "+
				"the hops below are the answered query's")
		}
	case w.Protocol == "icmp":
		run.TrafficErr = ping(src, dst.Addr(), port, token)
	case w.Protocol == "tcp":
		run.App, run.TrafficErr = httpGet(src, client.IP, port, dst, token, timeout, "/")
	case w.Protocol == "udp":
		run.App, run.TrafficErr = udpEcho(src, port, dst, token, timeout)
	}
	frames, pkts, traces, err := collect(caps, tr)
	if err != nil {
		return nil, err
	}
	if w.Protocol == "tcp" {
		cl.FindISN(&walk.Expectation{From: client, ClientPort: port}, pkts)
	}
	picked, reached := "", false
	if svc != nil {
		eps := svc.Endpoints(s.Topo)
		if len(eps) == 0 {
			return nil, fmt.Errorf("walk %s: Service %s/%s has no endpoints (traffic: %v)", w.Name, svc.Namespace, svc.Name, run.TrafficErr)
		}
		picked = cl.Endpoint(pkts, eps)
		if reached = picked != ""; !reached {
			picked = eps[walk.SortedAddrs(eps)[0]] // nothing got past the DNAT: report against the first
		}
	}
	e, err := walk.Derive(s.Topo, w, port, picked)
	if err != nil {
		return nil, err
	}
	e.Points = pts // every captured point is named in the pcapng and must be explained
	run.Report = walk.Check(e, cl, pkts)
	run.Report.CrossAZ = walk.CountCrossAZ(walk.PortAZs(s.Topo, nil), pkts, walk.FlowPackets(cl, pkts))
	if tr != nil {
		run.Explain = s.explain(run.Report, traces)
	}
	run.Report.Notes = append(run.Report.Notes, run.notes...)
	for _, n := range natNodes {
		ev := s.natEvidence(n, before[n], client.IP, port)
		if ev.Err != nil {
			run.Report.Notes, run.Report.Failed = append(run.Report.Notes, ev.Err.Error()), true
		}
		run.NATEvidence = append(run.NATEvidence, ev)
	}
	switch {
	case w.Expect == "drop" && run.TrafficErr == nil:
		run.Report.Notes = append(run.Report.Notes, "traffic: answered, but this walk expects the flow to be dropped")
		run.Report.Failed = true
	case w.Expect == "drop":
		run.Report.Notes = append(run.Report.Notes, "traffic: no answer, as expected ("+run.TrafficErr.Error()+")")
	case run.TrafficErr != nil:
		run.Report.Notes = append(run.Report.Notes, "traffic: "+run.TrafficErr.Error())
		run.Report.Failed = true
	}
	if reached {
		run.Report.Notes = append(run.Report.Notes, "the kernel picked endpoint "+picked)
	}
	if run.App != nil {
		run.Report.Notes = append(run.Report.Notes, fmt.Sprintf("%s's app saw the client as %s", run.App.Object, run.App.Remote))
	}
	if w.Kind == spec.WalkDNS && run.TrafficErr == nil {
		want := svcAddr(s.Topo, w.Query, s.podNamespace(w.From))
		run.Report.Notes = append(run.Report.Notes, fmt.Sprintf("%s resolved to %s (the Service's ClusterIP is %s)", w.Query, answer, want))
		if answer != want {
			run.Report.Failed = true
		}
	}
	if run.Pcap, err = writePcap(outDir, s.Lab, w.Name, e, cl, frames, pkts); err != nil {
		return run, err
	}
	run.Ladder, err = writeLadder(run, w)
	return run, err
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
	for _, cand := range searchNames(name, cluster.SearchPath(namespace)) {
		if ip, ok := recs[cand]; ok {
			return ip.String()
		}
	}
	return ""
}

// searchNames is the order a resolver with ndots:5 tries a name in.
func searchNames(name string, search []string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	var out []string
	if strings.Count(name, ".") >= 5 {
		out = append(out, name+".")
	}
	for _, s := range search {
		out = append(out, name+"."+s+".")
	}
	if strings.Count(name, ".") < 5 {
		out = append(out, name+".")
	}
	return out
}

// resolve asks the cluster DNS from inside the pod, trying the search path
// as the pod's resolver would; it returns the ID and source port of the
// query that was answered, and the address.
func resolve(n *ns.NS, port uint16, server netip.AddrPort, name string, search []string) (uint16, uint16, string, error) {
	var lastPort uint16
	for i, q := range searchNames(name, search) {
		if i > 0 { // each name from a new source port, as a stub resolver does
			var err error
			if port, err = freePort(n, "udp4", netip.Addr{}); err != nil {
				return 0, lastPort, "", err
			}
		}
		c, err := dialFrom(n, "udp4", netip.Addr{}, port, server)
		if err != nil {
			return 0, port, "", err
		}
		lastPort = port
		m := new(dns.Msg)
		m.SetQuestion(q, dns.TypeA)
		co := &dns.Conn{Conn: c}
		_ = c.SetDeadline(time.Now().Add(trafficTimeout))
		err = co.WriteMsg(m)
		var r *dns.Msg
		if err == nil {
			r, err = co.ReadMsg()
		}
		c.Close()
		if err != nil {
			return m.Id, lastPort, "", fmt.Errorf("asking %s for %s: %w", server, q, err)
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				return m.Id, lastPort, a.A.String(), nil
			}
		}
	}
	return 0, lastPort, "", fmt.Errorf("%s: no name in the search path resolved", name)
}

// spread opens many connections to a Service and counts which endpoint
// answered each (walk B1's "every endpoint is reached").
func (s *Session) spread(w spec.Walk) (*Run, error) {
	if w.LoadBalancer != "" {
		return s.lbSpread(w)
	}
	svc := walk.ServiceOf(s.Topo, w)
	src, err := s.NS(w.From)
	if err != nil {
		return nil, err
	}
	from := s.Topo.Pod(w.From)
	counts := map[string]int{}
	failures, lastErr := countAnswers(src, from.IP, svc.Dest(s.Topo, w), w.Connections, counts)
	run := &Run{Spread: &Spread{Counts: counts, Failures: failures, Connections: w.Connections, LastErr: lastErr}}
	for _, pod := range svc.Endpoints(s.Topo) {
		p := s.Topo.Pod(pod)
		run.Spread.Endpoints = append(run.Spread.Endpoints, SpreadEndpoint{Pod: pod, Node: p.Node, Local: p.Node == from.Node})
	}
	sort.Slice(run.Spread.Endpoints, func(i, j int) bool { return run.Spread.Endpoints[i].Pod < run.Spread.Endpoints[j].Pod })
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
}

// SpreadEndpoint is one endpoint of a spread walk.
type SpreadEndpoint struct {
	Pod, Node string
	Local     bool // on the client's node, or in the load balancer node's AZ
}

// Passed: no connection failed and every endpoint that may answer did, at
// least once; with ZoneOnly, no endpoint of another AZ answered.
func (s *Spread) Passed() bool {
	if s.Failures > 0 || len(s.Endpoints) == 0 {
		return false
	}
	for _, e := range s.Endpoints {
		reached := s.Counts[e.Pod] > 0
		if s.ZoneOnly && !e.Local {
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

// freePort asks the kernel for a port no socket of the namespace holds,
// TIME_WAIT included, so a walk can bind its client to a port known before
// the first packet (and so find its SYN) without colliding with an earlier
// connection to the same destination.
func freePort(n *ns.NS, network string, src netip.Addr) (uint16, error) {
	var port uint16
	err := n.Do(func() error {
		host := ""
		if src.IsValid() {
			host = src.String()
		}
		if network == "udp4" {
			c, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
			if err != nil {
				return err
			}
			port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
			return c.Close()
		}
		l, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		port = uint16(l.Addr().(*net.TCPAddr).Port)
		return l.Close()
	})
	return port, err
}

// randomPort is an ICMP echo identifier.
func randomPort() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return 20000 + binary.BigEndian.Uint16(b[:])%40000
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "labctl-walk-" + hex.EncodeToString(b[:])
}

// ping sends one ICMP echo request with the token as payload from inside
// the source namespace and waits for the matching reply.
func ping(n *ns.NS, dst netip.Addr, id uint16, token string) error {
	var c *icmp.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return fmt.Errorf("icmp socket in %s: %w", n.Name, err)
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(id), Seq: 1, Data: []byte(token)}}
	b, _ := msg.Marshal(nil)
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("sending echo request to %s: %w", dst, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(trafficTimeout))
	buf := make([]byte, 1500)
	for {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no echo reply from %s: %w", dst, err)
		}
		m, err := icmp.ParseMessage(1, buf[:k])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && m.Type == ipv4.ICMPTypeEchoReply && string(e.Data) == token {
			return nil
		}
	}
}

// dialFrom opens a socket in the namespace, bound to the chosen source port
// so the walk can find its SYN.
func dialFrom(n *ns.NS, network string, src netip.Addr, port uint16, dst netip.AddrPort, timeout ...time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: trafficTimeout}
		if len(timeout) > 0 {
			d.Timeout = timeout[0]
		}
		if network == "tcp4" {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice(), Port: int(port)}
		} else {
			d.LocalAddr = &net.UDPAddr{Port: int(port)}
		}
		var err error
		c, err = d.Dial(network, dst.String())
		return err
	})
	return c, err
}

// countAnswers makes n requests, each on a new connection, and counts the
// pods that answered: how a spread over a Service's endpoints is seen.
func countAnswers(src *ns.NS, from netip.Addr, dst netip.AddrPort, n int, counts map[string]int) (failures int, lastErr error) {
	for i := 0; i < n; i++ {
		a, err := httpGet(src, from, 0, dst, newToken(), trafficTimeout, "/")
		if err != nil {
			failures, lastErr = failures+1, err
			continue
		}
		counts[a.Object]++
	}
	return failures, lastErr
}

// httpGet makes one HTTP request over a fresh connection and decodes the
// app's answer.
func httpGet(n *ns.NS, src netip.Addr, port uint16, dst netip.AddrPort, token string, timeout time.Duration, path string) (*AppAnswer, error) {
	a, status, err := httpDo(n, src, port, dst, token, timeout, path)
	if err == nil && a == nil {
		// A walk's app answers 200; anything else is the walk's failure,
		// never a nil answer for the caller to trip on.
		return nil, fmt.Errorf("%s answered HTTP %d, not the app's 200", dst, status)
	}
	return a, err
}

// httpDo makes one HTTP request over a fresh connection and returns the
// app's answer when the status is 200, and the status.
func httpDo(n *ns.NS, src netip.Addr, port uint16, dst netip.AddrPort, token string, timeout time.Duration, path string) (*AppAnswer, int, error) {
	c, err := dialFrom(n, "tcp4", src, port, dst, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("connecting to %s: %w", dst, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	walkLine := ""
	if token != "" { // a walk's request, which the ALB tracks; a bench's is plain
		walkLine = walkHeader + ": " + token + "\r\n"
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path, dst, walkLine)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the answer from %s: %w", dst, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, resp.StatusCode, nil
	}
	var a AppAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("decoding the answer from %s (HTTP %d): %w", dst, resp.StatusCode, err)
	}
	return &a, resp.StatusCode, nil
}

func udpEcho(n *ns.NS, port uint16, dst netip.AddrPort, token string, timeout time.Duration) (*AppAnswer, error) {
	c, err := dialFrom(n, "udp4", netip.Addr{}, port, dst, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(token)); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	k, err := c.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("no UDP answer from %s: %w", dst, err)
	}
	var a AppAnswer
	if err := json.Unmarshal(buf[:k], &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// writePcap writes the run's frames, one interface block per capture point,
// with each flow packet's leg as a frame comment.
func writePcap(dir, lab, walkName string, e *walk.Expectation, cl *walk.Classifier, frames []capture.Frame, pkts []walk.Packet) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s-%s.pcapng", lab, walkName, time.Now().UTC().Format("20060102T150405.000"))
	path := filepath.Join(dir, strings.ReplaceAll(name, ":", ""))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
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

var errNoLab = errors.New("no lab is up")

// Resolve picks the lab to act on: the one named, or the only one up.
func Resolve(name string) (string, error) {
	if name != "" {
		return name, spec.ValidateLabName(name)
	}
	labs, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", fmt.Errorf("%w: labctl up <topology> first", errNoLab)
	case 1:
		return labs[0], nil
	}
	return "", fmt.Errorf("%d labs are up (%s): say which with --lab", len(labs), strings.Join(labs, ", "))
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
	var out bytes.Buffer
	err = h.Do(func() error {
		cmd := exec.Command(iptablesOf(h).Save, "-c")
		cmd.Stdout = &out
		return cmd.Run()
	})
	if err != nil {
		return "", fmt.Errorf("iptables-save -c in %s: %w", h.Name, err)
	}
	return out.String(), nil
}

// natEvidence reads what a node's kernel recorded of the walk's flow.
func (s *Session) natEvidence(node, before string, client netip.Addr, port uint16) NATEvidence {
	ev := NATEvidence{Node: node}
	if after, err := s.natSave(node); err == nil {
		ev.Chains = traversalOrder(movedChains(before, after, "KUBE-"))
	} else {
		ev.Err = fmt.Errorf("reading %s's counters: %w", node, err)
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
	for _, f := range flows {
		if f.Forward.SrcIP.Equal(client.AsSlice()) && f.Forward.SrcPort == port {
			ev.Conntrack = append(ev.Conntrack, conntrackLine(f))
		}
	}
	return ev
}

// conntrackLine prints a flow as conntrack -L does.
func conntrackLine(f *netlink.ConntrackFlow) string {
	proto := map[uint8]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_ICMP: "icmp"}[f.Forward.Protocol]
	t := func(x netlink.IPTuple) string {
		return fmt.Sprintf("src=%s dst=%s sport=%d dport=%d", x.SrcIP, x.DstIP, x.SrcPort, x.DstPort)
	}
	return fmt.Sprintf("%s %s %s", proto, t(f.Forward), t(f.Reverse))
}

// writeLadder puts the run's ladder diagram beside its pcapng.
func writeLadder(run *Run, w spec.Walk) (string, error) {
	path := strings.TrimSuffix(run.Pcap, ".pcapng") + ".html"
	title := fmt.Sprintf("walk %s: %s", w.Name, w.Title)
	return path, os.WriteFile(path, []byte(draw.Ladder(run.Report, title, filepath.Base(run.Pcap))), 0o644)
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
	return caps, tr, nil
}
