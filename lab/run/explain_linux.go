//go:build linux

package run

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// traceComment starts the comment of every TRACE rule a walk --explain
// adds; the rest names the labctl process that added it, so a later
// command can tell the rules of a walk that was killed from those of one
// still running (ClearStaleTraces).
const traceComment = "labctl explain"

func traceTag() string { return fmt.Sprintf("%s pid=%d", traceComment, os.Getpid()) }

var traceRule = regexp.MustCompile(`(?m)^-A (PREROUTING|OUTPUT) -m comment --comment "?(labctl explain(?: pid=(\d+))?)"? -j TRACE$`)

// ClearStaleTraces removes what a killed walk --explain left in the lab:
// TRACE rules whose labctl process is gone (they would trace every packet
// for the lab's lifetime) and xtables-monitor processes no live walk
// reads. It returns the namespaces it cleaned.
func (s *Session) ClearStaleTraces() ([]string, error) {
	var cleaned []string
	var errs []error
	for _, o := range s.traceable() {
		h, err := s.NS(o)
		if err != nil {
			continue // a namespace the lab no longer has
		}
		save, err := s.nf.Save(h, false, "raw")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var del strings.Builder
		live := map[int]bool{}
		for _, m := range traceRule.FindAllStringSubmatch(save, -1) {
			pid, _ := strconv.Atoi(m[3])
			if pid > 0 && syscall.Kill(pid, 0) == nil {
				live[pid] = true
				continue
			}
			fmt.Fprintf(&del, "-D %s -m comment --comment %q -j TRACE\n", m[1], m[2])
		}
		n := kernel.KillOrphans(h.Name, "xtables-monitor", live)
		if clearStaleNFTTraces(h) {
			n++
		}
		if del.Len() > 0 {
			if err := s.nf.Restore(h, "*raw\n"+del.String()+"COMMIT\n", true); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if del.Len() > 0 || n > 0 {
			cleaned = append(cleaned, o)
		}
	}
	return cleaned, errors.Join(errs...)
}

// traceable are the namespaces walk --explain may add TRACE rules to.
func (s *Session) traceable() []string {
	var out []string
	for _, n := range s.Topo.Nodes {
		out = append(out, n.Name)
	}
	out = append(out, spec.RouterName)
	if m, err := lb.Build(s.Topo); err == nil {
		for _, l := range m.LBs {
			out = append(out, l.Name)
		}
	}
	if s.Topo.Internet != nil {
		out = append(out, spec.GatewayName, spec.InternetName)
	}
	return out
}

// tracer runs xtables-monitor --trace in the namespaces that take
// decisions, with a TRACE rule on everything for the length of one walk.
type tracer struct {
	mons   map[string]*monitor
	once   sync.Once
	traces map[string][]*TracedPacket
}

type monitor struct {
	obj string
	traceMonitor
}

// deciders are the namespaces that forward: nodes, the router, load
// balancers, the gateway and the internet router (pods and hosts only
// send and receive).
func deciders(t *spec.Topology, pts []walk.Point) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range pts {
		o := p.Object
		if seen[o] || t.Pod(o) != nil || t.Host(o) != nil || t.InternetHost(o) != nil {
			continue
		}
		seen[o] = true
		out = append(out, o)
	}
	return out
}

// startTrace starts one monitor per namespace and returns once each has
// reported a marker packet sent after it started: the monitors are ready
// by observation, not by waiting.
func (s *Session) startTrace(objs []string) (*tracer, error) {
	if _, err := exec.LookPath("xtables-monitor"); err != nil {
		return nil, fmt.Errorf("explain needs xtables-monitor (Debian's iptables package, nf_tables backend)")
	}
	if s.Topo.Iptables == spec.IptablesLegacy {
		return nil, fmt.Errorf("explain traces with nf_tables (xtables-monitor --trace); lab %s uses iptables-legacy", s.Lab)
	}
	if _, err := s.ClearStaleTraces(); err != nil {
		return nil, err
	}
	t := &tracer{mons: map[string]*monitor{}}
	for _, o := range objs {
		h, err := s.NS(o)
		if err != nil {
			t.stop()
			return nil, err
		}
		rules := fmt.Sprintf("*raw\n-I PREROUTING 1 -m comment --comment %q -j TRACE\n-I OUTPUT 1 -m comment --comment %q -j TRACE\nCOMMIT\n",
			traceTag(), traceTag())
		if err := s.nf.Restore(h, rules, true); err != nil {
			t.stop()
			return nil, err
		}
		m := &monitor{obj: o, traceMonitor: traceMonitor{h: h}}
		t.mons[o] = m
		m.respawn = true // see traceMonitor.respawn
		if err := m.start(nil, "xtables-monitor", "--trace"); err != nil {
			t.stop()
			return nil, fmt.Errorf("xtables-monitor in %s: %w", h.Name, err)
		}
	}
	for _, m := range t.mons {
		if err := m.sync(); err != nil {
			t.stop()
			return nil, err
		}
	}
	return t, nil
}

// sync sends marker packets until the monitor reports one: every event
// before it has then been read.
func (m *monitor) sync() error {
	m.marker++
	port := 40000 + m.marker
	want := "DPORT=" + strconv.Itoa(port) + " "
	if m.awaitMarker(port, want, "labctl explain marker") {
		return nil
	}
	return fmt.Errorf("xtables-monitor in %s reported no trace (is the nf_tables TRACE available here?)", m.h.Name)
}

// stop flushes every monitor (a final marker), ends it, removes the TRACE
// rules, and returns each namespace's traced packets. Only the first call
// does it, so a walk can defer stop for its error paths and still call it.
func (t *tracer) stop() map[string][]*TracedPacket {
	t.once.Do(func() { t.traces = t.stopNow() })
	return t.traces
}

func (t *tracer) stopNow() map[string][]*TracedPacket {
	out := map[string][]*TracedPacket{}
	for o, m := range t.mons {
		if m.running() {
			_ = m.sync()
		}
		lines := m.end()
		rules := fmt.Sprintf("*raw\n-D PREROUTING -m comment --comment %q -j TRACE\n-D OUTPUT -m comment --comment %q -j TRACE\nCOMMIT\n",
			traceTag(), traceTag())
		_ = netfilter.Of(m.h).Restore(m.h, rules, true)
		out[o] = parseTrace(lines)
	}
	return out
}

// explain states, for each hop where a namespace took a decision, what the
// kernel says it did: the iptables rules the packet hit (TRACE), the
// policy rule and route (a route lookup with the packet's source, incoming
// interface and mark), the neighbour entry for the next hop, and the
// conntrack entry of a translated flow. What the kernel did not report is
// said, not guessed.
func (s *Session) explain(r *walk.Report, traces map[string][]*TracedPacket) map[int][]string {
	out := map[int][]string{}
	for i, h := range r.Hops {
		if h.Seen == nil || h.Dir != walk.Out {
			continue
		}
		// The decision for an outgoing hop was taken when the packet entered
		// this namespace (the previous hop of the leg here), or it started here.
		var in *walk.HopResult
		for j := i - 1; j >= 0; j-- {
			p := r.Hops[j]
			if p.Leg != h.Leg {
				break
			}
			if p.Point.Object == h.Point.Object && p.Dir == walk.In && p.Seen != nil {
				in = &r.Hops[j]
				break
			}
			if p.Point.Object != h.Point.Object {
				break
			}
		}
		if s.isBridgePort(h.Point) {
			continue // switched on a bridge: no routing decision
		}
		lines := s.decide(h, in, traces[h.Point.Object])
		out[i] = lines
	}
	return out
}

func (s *Session) isBridgePort(p walk.Point) bool {
	h, err := s.NS(p.Object)
	if err != nil {
		return false
	}
	l, err := h.NL.LinkByName(p.Iface)
	return err == nil && l.Attrs().MasterIndex != 0
}

func (s *Session) decide(out walk.HopResult, in *walk.HopResult, traced []*TracedPacket) []string {
	obj := out.Point.Object
	h, err := s.NS(obj)
	if err != nil {
		return []string{"(namespace not readable: " + err.Error() + ")"}
	}
	var lines []string
	src, dst := out.Seen.Src, out.Seen.Dst
	iif := ""
	if in != nil && proxied(in.Seen, out.Seen) {
		// A connection this namespace opened itself (the ALB's to its
		// target): routed as a local packet from its own source.
		in = nil
	}
	if in != nil {
		src, iif = in.Seen.Src, in.Point.Iface
	}
	var mark uint32
	markNote := ""
	nat := false
	if tp := findTraced(traced, out.Seen); tp != nil || (in != nil && findTraced(traced, in.Seen) != nil) {
		if tp == nil {
			tp = findTraced(traced, in.Seen)
		}
		for _, rule := range tp.Rules {
			if strings.Contains(rule, traceComment) {
				continue
			}
			lines = append(lines, obj+": iptables "+rule)
		}
		nat = translated(tp.Rules)
		if m, ok := tp.Fields["MARK"]; ok {
			v, _ := strconv.ParseUint(strings.TrimPrefix(m, "0x"), 16, 32)
			mark = uint32(v)
			markNote = " mark " + m
		}
	} else if traced != nil && s.Topo.NFTablesMode() && s.Topo.Node(obj) != nil {
		lines = append(lines, obj+": iptables: xtables-monitor printed nothing of this packet (in nftables mode it exits at "+
			"the first kube-proxy rule a traced packet crosses and is restarted, and misses the packets in between)")
	} else if traced != nil {
		lines = append(lines, obj+": iptables: the kernel reported no trace of this packet")
	}
	if traced != nil && s.Topo.NFTablesMode() && s.Topo.Node(obj) != nil {
		// xtables-monitor prints the iptables-nft tables' rules only: the
		// walk's nft monitor trace has kube-proxy's.
		lines = append(lines, s.nftw.explain(obj, &out, in)...)
	}
	lines = append(lines, s.routeLine(h, obj, src, dst, iif, mark, markNote)...)
	if nat {
		lines = append(lines, conntrackLines(h, obj, src, out.Seen, in)...)
	}
	return lines
}

// proxied: out is not in forwarded (NAT keeps TCP sequence numbers) but
// a segment of another connection the namespace opened, as a proxy does.
func proxied(in, out *walk.Packet) bool {
	return in.Proto == "tcp" && out.Proto == "tcp" && in.TCP.Seq != out.TCP.Seq
}

// routeLine is the policy rule and route the kernel uses for the packet,
// and the neighbour entry of its next hop.
func (s *Session) routeLine(h *ns.NS, obj string, src, dst netip.Addr, iif string, mark uint32, markNote string) []string {
	opts := &netlink.RouteGetOptions{Mark: mark}
	if iif != "" {
		opts.Iif = iif
		opts.SrcAddr = src.AsSlice()
	}
	routes, err := h.NL.RouteGetWithOptions(dst.AsSlice(), opts)
	if err != nil || len(routes) == 0 {
		return []string{fmt.Sprintf("%s: route lookup for %s from %s iif %s%s: %v", obj, dst, src, iif, markNote, err)}
	}
	rt := routes[0]
	dev := ""
	if l, err := h.NL.LinkByIndex(rt.LinkIndex); err == nil {
		dev = l.Attrs().Name
	}
	if rt.Type == unix.RTN_LOCAL {
		return []string{fmt.Sprintf("%s: %s is local: delivered to a socket here", obj, dst)}
	}
	rules, _ := h.NL.RuleList(unix.AF_INET)
	var cands []RuleCandidate
	for _, r := range rules {
		rc := RuleCandidate{RuleState: walk.RuleState{Priority: r.Priority, Src: prefix(r.Src), Dst: prefix(r.Dst), Table: r.Table,
			Mark: r.Mark}, IIF: r.IifName}
		if r.Mask != nil {
			rc.Mask = *r.Mask
		}
		cands = append(cands, rc)
	}
	ruleText := fmt.Sprintf("(table %d: the rule that chose it is not among the kernel's rules)", rt.Table)
	if rc := matchRule(cands, src, dst, iif, mark, rt.Table); rc != nil {
		ruleText = "rule " + describeRuleState(*rc)
	}
	via := "dev " + dev
	next := dst
	if rt.Gw != nil {
		via = fmt.Sprintf("via %s dev %s", rt.Gw, dev)
		next, _ = netip.AddrFromSlice(rt.Gw.To4())
	}
	lines := []string{fmt.Sprintf("%s: %s -> %s %s (lookup for %s from %s%s%s)", obj, ruleText, routePrefix(h, rt.Table, dst), via,
		dst, src, map[bool]string{true: " iif " + iif}[iif != ""], markNote)}
	neighs, _ := h.NL.NeighList(rt.LinkIndex, unix.AF_INET)
	found := false
	for _, n := range neighs {
		if n.IP.Equal(next.AsSlice()) {
			mac := n.HardwareAddr.String()
			if mac == "" {
				mac = "(none)"
			}
			lines = append(lines, fmt.Sprintf("%s: neighbour %s lladdr %s %s on %s", obj, next, mac, neighState(n.State), dev))
			found = true
		}
	}
	if !found {
		lines = append(lines, fmt.Sprintf("%s: no neighbour entry for %s on %s left in the cache", obj, next, dev))
	}
	return lines
}

// routePrefix is the destination of the table's route that matched, as
// `ip route` shows it ("default" or a prefix).
func routePrefix(h *ns.NS, table int, dst netip.Addr) string {
	routes, err := h.NL.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return dst.String()
	}
	best, bits := "default", -1
	for _, r := range routes {
		p := netip.MustParsePrefix("0.0.0.0/0")
		if r.Dst != nil {
			p = prefix(r.Dst)
		}
		if p.Contains(dst) && p.Bits() > bits {
			bits = p.Bits()
			best = p.String()
			if p.Bits() == 0 {
				best = "default"
			}
		}
	}
	return best
}

func neighState(s int) string {
	for _, st := range []struct {
		bit  int
		name string
	}{{netlink.NUD_PERMANENT, "PERMANENT"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_NOARP, "NOARP"},
		{netlink.NUD_INCOMPLETE, "INCOMPLETE (asked by ARP, no answer yet)"}, {netlink.NUD_FAILED, "FAILED (ARP got no answer)"}} {
		if s&st.bit != 0 {
			return st.name
		}
	}
	return fmt.Sprintf("state %#x", s)
}

// conntrackLines is the conntrack entry of a translated flow here.
func conntrackLines(h *ns.NS, obj string, src netip.Addr, out *walk.Packet, in *walk.HopResult) []string {
	flows, err := h.NL.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		return []string{obj + ": conntrack not readable: " + err.Error()}
	}
	sport := out.SrcPort
	if in != nil {
		sport = in.Seen.SrcPort
	}
	var lines []string
	for _, f := range flows {
		if (f.Forward.SrcIP.Equal(src.AsSlice()) && f.Forward.SrcPort == sport) ||
			(f.Reverse.SrcIP.Equal(src.AsSlice()) && f.Reverse.SrcPort == sport) {
			lines = append(lines, obj+": conntrack "+entryOf(f).String())
		}
	}
	if len(lines) == 0 {
		lines = append(lines, obj+": conntrack has no entry for this flow (any more)")
	}
	return lines
}
