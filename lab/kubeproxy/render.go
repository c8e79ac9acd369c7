package kubeproxy

import (
	"slices"
	"strconv"
)

// largeClusterEndpointsThreshold is kube-proxy's switch to "large cluster
// mode": above this many endpoints the SEP and SVC->SEP comments are dropped
// to shrink the ruleset.
const largeClusterEndpointsThreshold = 1000

// Render returns the complete iptables-restore payload (`*filter` and `*nat`)
// of a full kube-proxy sync for one node: what kube-proxy writes on startup.
// It is deterministic: services are emitted sorted by namespace/name/port and
// endpoints by "ip:port", which is one of the orders kube-proxy's map
// iteration can produce for the rules; the nat chain declarations come in
// reverse name order, which kube-proxy's never do (see assemble). Apply it
// with iptables-restore --noflush; add InitialRestore's jump rules the
// first time.
func Render(cfg Config, services []ServicePort) ([]byte, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	pr, err := prepare(s, services, nil)
	if err != nil {
		return nil, err
	}
	out := newRenderer(s, len(pr.svcs), pr.total, len(pr.svcs), pr.total).run(pr.svcs, syncInput{full: true})
	return out.payload, nil
}

// syncInput is the state a sync diffs against.
type syncInput struct {
	// full rewrites every service's chains; otherwise only services whose
	// chain text differs from prev are written (KEP-3453).
	full bool
	// prev maps namespace/name to the nat chain text of that Service at the
	// last successful sync.
	prev map[string]string
	// existing holds the nat chains believed to be in the kernel; the ones
	// kube-proxy owns but no longer uses are deleted with -X.
	existing map[Chain]struct{}
	// keepState asks for syncOutput.content and written (a Proxier needs
	// them; a one-off Render does not).
	keepState bool
	// unchanged, if set on a partial sync, reports a Service whose ports
	// (given their number) all have the input of the last applied sync, so
	// its chains are known to equal prev without rendering them.
	unchanged func(nsn string, ports int) bool
}

// syncOutput is a rendered sync plus the state it leaves once applied.
type syncOutput struct {
	payload []byte
	// content maps namespace/name to the nat chain text now in force.
	content map[string]string
	// written are the per-service chains the payload declares.
	written []Chain
	// deleted are stale chains the payload removes.
	deleted []Chain
	// natRules is the number of nat rules written (kube-proxy's
	// sync_proxy_rules_iptables_last{table="nat"}).
	natRules int
	// reused counts Services taken from the memo without rendering.
	reused int
}

// renderer holds the four buffers of one sync, as proxier.go does.
type renderer struct {
	s            *settings
	filterChains lineBuffer
	filterRules  lineBuffer
	natChains    lineBuffer
	natRules     lineBuffer
	active       map[Chain]struct{}
	largeCluster bool
	probs        []string
}

// newRenderer sizes the buffers from measured output (about 320 bytes of
// always-written nat rules per service port, 500 more for its own chains
// and 350 per endpoint, 35 bytes per chain line) so a big sync does not
// spend its time growing them, nor a partial one clearing a full sync's
// worth of memory. rendered counts the ports (and their endpoints) whose
// own chains will be written.
func newRenderer(s *settings, services, totalEndpoints, rendered, renderedEndpoints int) *renderer {
	r := &renderer{
		s:            s,
		active:       make(map[Chain]struct{}, 2*services+totalEndpoints),
		largeCluster: totalEndpoints > largeClusterEndpointsThreshold,
	}
	r.filterChains.b = make([]byte, 0, 256)
	r.filterRules.b = make([]byte, 0, 1024+32*services)
	r.natChains.b = make([]byte, 0, 256+70*rendered+35*renderedEndpoints)
	r.natRules.b = make([]byte, 0, 1024+320*services+500*rendered+350*renderedEndpoints)
	return r
}

// run renders one sync. Services must be sorted (prepare does that), so
// the ports of one Service are adjacent.
func (r *renderer) run(svcs []*svcPort, in syncInput) syncOutput {
	out := syncOutput{content: make(map[string]string, len(svcs))}
	r.topLevel()
	for i := 0; i < len(svcs); {
		j := i + 1
		for j < len(svcs) && svcs[j].nsn == svcs[i].nsn {
			j++
		}
		r.service(svcs[i:j], in, &out)
		i = j
	}
	out.deleted = r.staleChains(in.existing)
	r.trailer()
	out.natRules = r.natRules.lines - len(out.deleted)
	out.payload = r.assemble()
	return out
}

// service renders all ports of one Service. Their KUBE-SERVICES,
// KUBE-NODEPORTS and filter rules are always written; on a partial sync the
// Service's own chains are cut back out if they equal the last applied ones.
func (r *renderer) service(ports []*svcPort, in syncInput, out *syncOutput) {
	nsn := ports[0].nsn
	prev, had := in.prev[nsn]
	if !in.full && had && in.unchanged != nil && in.unchanged(nsn, len(ports)) {
		for _, sp := range ports {
			r.unchangedPort(sp)
		}
		out.content[nsn] = prev
		out.reused++
		return
	}
	var declSpans, ruleSpans []span
	var declared []Chain
	for _, sp := range ports {
		d, rl, chains := r.servicePort(sp)
		declSpans = append(declSpans, d)
		ruleSpans = append(ruleSpans, rl)
		declared = append(declared, chains...)
	}
	if !in.full && had && r.sameContent(prev, declSpans, ruleSpans) {
		r.natChains.cut(declSpans)
		r.natRules.cut(ruleSpans)
		out.content[nsn] = prev
		return
	}
	if in.keepState {
		out.content[nsn] = r.contentString(declSpans, ruleSpans)
		out.written = append(out.written, declared...)
	}
}

// sameContent compares the spans' text with prev without allocating.
func (r *renderer) sameContent(prev string, decl, rules []span) bool {
	off := 0
	eat := func(b []byte) bool {
		if len(prev)-off < len(b) || prev[off:off+len(b)] != string(b) {
			return false
		}
		off += len(b)
		return true
	}
	for _, s := range decl {
		if !eat(r.natChains.b[s.start:s.end]) {
			return false
		}
	}
	for _, s := range rules {
		if !eat(r.natRules.b[s.start:s.end]) {
			return false
		}
	}
	return off == len(prev)
}

// contentString is the text sameContent compares against.
func (r *renderer) contentString(decl, rules []span) string {
	n := 0
	for _, s := range decl {
		n += s.end - s.start
	}
	for _, s := range rules {
		n += s.end - s.start
	}
	b := make([]byte, 0, n)
	for _, s := range decl {
		b = append(b, r.natChains.b[s.start:s.end]...)
	}
	for _, s := range rules {
		b = append(b, r.natRules.b[s.start:s.end]...)
	}
	return string(b)
}

// topLevel writes the chains and rules rewritten on every sync, before the
// per-service rules.
func (r *renderer) topLevel() {
	for _, c := range []Chain{ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall} {
		r.filterChains.chainLine(c)
	}
	for _, c := range []Chain{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq} {
		r.natChains.chainLine(c)
	}
	mark := r.s.mark
	r.natRules.write("-A", string(ChainPostrouting), "-m", "mark", "!", "--mark", mark+"/"+mark, "-j", "RETURN")
	// Clear the mark so a packet that re-traverses the stack is not
	// masqueraded twice.
	r.natRules.write("-A", string(ChainPostrouting), "-j", "MARK", "--xor-mark", mark)
	if r.s.randomFully {
		r.natRules.write("-A", string(ChainPostrouting), "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE", "--random-fully")
	} else {
		r.natRules.write("-A", string(ChainPostrouting), "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE")
	}
	r.natRules.write("-A", string(ChainMarkMasq), "-j", "MARK", "--or-mark", mark)
	if !r.s.ipv6 && r.s.localhostNodePorts {
		// route_localnet opens a hole (https://issue.k8s.io/90259) that this
		// martian-drop rule closes; kubelet writes an identical copy.
		r.filterChains.chainLine(ChainKubeletFirewall)
		r.filterRules.write("-A", string(ChainKubeletFirewall), "-m", "comment", "--comment", `"block incoming localnet connections"`,
			"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")
	}
}

// staleChains declares and deletes (-X) every kube-proxy chain that exists
// but is no longer active, sorted so output is deterministic.
func (r *renderer) staleChains(existing map[Chain]struct{}) []Chain {
	var stale []Chain
	for c := range existing {
		if _, ok := r.active[c]; !ok && IsServiceChainName(c) {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	for _, c := range stale {
		r.natChains.chainLine(c)
		r.natRules.write("-X", string(c))
	}
	return stale
}

// trailer writes the rules that must come after every service rule.
func (r *renderer) trailer() {
	const comment = `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`
	if r.s.nodePortMatchAll {
		switch {
		case r.s.ipv6:
			r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", comment,
				"-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "::1/128", "-j", string(ChainNodePorts))
		case !r.s.localhostNodePorts:
			r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", comment,
				"-m", "addrtype", "--dst-type", "LOCAL", "!", "-d", "127.0.0.0/8", "-j", string(ChainNodePorts))
		default:
			r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", comment,
				"-m", "addrtype", "--dst-type", "LOCAL", "-j", string(ChainNodePorts))
		}
	} else {
		for _, ip := range r.s.nodePortIPs {
			r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", comment, "-d", ip, "-j", string(ChainNodePorts))
		}
	}
	// Drop INVALID packets, which would otherwise reset connections when
	// nf_conntrack_tcp_be_liberal is off (kubernetes#74839, #117924).
	if !r.s.tcpLiberal {
		if r.s.nfacct {
			r.filterRules.write("-A", string(ChainForward), "-m", "conntrack", "--ctstate", "INVALID",
				"-m", "nfacct", "--nfacct-name", "ct_state_invalid_dropped_pkts", "-j", "DROP")
		} else {
			r.filterRules.write("-A", string(ChainForward), "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
		}
	}
	// Forward marked traffic even if the FORWARD policy is DROP, and the
	// rest of its connection after that.
	r.filterRules.write("-A", string(ChainForward), "-m", "comment", "--comment", `"kubernetes forwarding rules"`,
		"-m", "mark", "--mark", r.s.mark+"/"+r.s.mark, "-j", "ACCEPT")
	r.filterRules.write("-A", string(ChainForward), "-m", "comment", "--comment", `"kubernetes forwarding conntrack rule"`,
		"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
}

// assemble joins the buffers into the payload, as proxier.go does, except
// that the nat chain declarations are in reverse name order. kube-proxy
// declares its top-level chains first, then each Service's chains together,
// Services in Go map order; the same rules result either way. Both backends
// keep the chains in name order in a linked list and walk it to insert each
// new one: declared in reverse order, each insertion stops at the list's
// head, and iptables-nft's list nodes lie in memory in list order. A
// 1,000-Service full restore takes 0.35-0.38 s instead of 0.67-0.73 s with
// iptables-nft 1.8.9 (docs/benchmarks.md).
func (r *renderer) assemble() []byte {
	n := len(r.filterChains.b) + len(r.filterRules.b) + len(r.natChains.b) + len(r.natRules.b) + 32
	b := make([]byte, 0, n)
	b = append(b, "*filter\n"...)
	b = append(b, r.filterChains.b...)
	b = append(b, r.filterRules.b...)
	b = append(b, "COMMIT\n*nat\n"...)
	b = appendLinesReversed(b, r.natChains.b)
	b = append(b, r.natRules.b...)
	b = append(b, "COMMIT\n"...)
	return b
}

// probability is the statistic-match probability for picking one of n
// remaining endpoints, formatted as kube-proxy does ("%0.10f") and cached.
func (r *renderer) probability(n int) string {
	for len(r.probs) <= n {
		r.probs = append(r.probs, "")
	}
	if r.probs[n] == "" {
		r.probs[n] = strconv.FormatFloat(1.0/float64(n), 'f', 10, 64)
	}
	return r.probs[n]
}
