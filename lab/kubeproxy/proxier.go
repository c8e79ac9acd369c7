package kubeproxy

import (
	"bufio"
	"bytes"
	"strings"
)

// Proxier carries kube-proxy's state between syncs so it can do partial
// syncs (KEP-3453, MinimizeIPTablesRestore): every sync rewrites the filter
// chains and the nat top-level chains, but a Service's KUBE-SVC/SVL/EXT/FW/
// SEP chains only when they changed since the last successful sync. Chains
// that are no longer used are flushed and deleted (-X).
//
// Use: r, err := p.Sync(services); apply r.Payload with
// `iptables-restore --noflush`; then p.Applied(r, restoreErr). A failed
// restore makes the next Sync a full one, as in kube-proxy. A Proxier is not
// safe for concurrent use.
type Proxier struct {
	s *settings
	// needFullSync is true at start, after a failed restore and after
	// ForceFullSync (kube-proxy's canary monitor firing).
	needFullSync bool
	// noMemo turns the memo off, for tests that compare with and without.
	noMemo bool
	// gen counts applied syncs; a result knows the gen it was built on.
	gen int
	// applied maps namespace/name to its nat chain text in the kernel.
	applied map[string]string
	// existing are the nat chains believed to be in the kernel.
	existing map[Chain]struct{}
	// memo is the input of the last applied sync, per port, with its
	// prepared form; memoPorts counts each Service's ports in it and
	// memoLarge is its large-cluster mode. A Service whose input is the
	// same again is neither prepared nor rendered again: kube-proxy, too,
	// only rebuilds the chains of Services its change trackers report.
	memo      map[portKey]*memoPort
	memoPorts map[string]int
	memoLarge bool
}

// SyncResult is one rendered sync.
type SyncResult struct {
	// Payload is the iptables-restore input (`*filter` and `*nat`).
	Payload []byte
	// Full is true for a full sync, which rewrites every chain.
	Full bool
	// WrittenChains are the per-Service chains Payload declares and fills:
	// every one on a full sync, the changed Services' on a partial one.
	WrittenChains []Chain
	// DeletedChains are the stale chains Payload deletes with -X.
	DeletedChains []Chain
	// NATRules is the number of nat rules in Payload (kube-proxy's
	// sync_proxy_rules_iptables_last{table="nat"} metric).
	NATRules int

	out syncOutput
	// memo, large and svcs become the Proxier's memo once applied.
	memo  map[portKey]*memoPort
	large bool
	svcs  []*svcPort
	gen   int
}

// NewProxier validates cfg and returns a Proxier whose first Sync is full.
func NewProxier(cfg Config) (*Proxier, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	return &Proxier{s: s, needFullSync: true, applied: map[string]string{}, existing: map[Chain]struct{}{}}, nil
}

// Sync renders the rules for services against the last applied state. It
// changes no state; Applied does. The error reports invalid input only.
func (p *Proxier) Sync(services []ServicePort) (*SyncResult, error) {
	memo := p.memo
	if memo == nil || p.noMemo {
		memo = map[portKey]*memoPort{}
	}
	pr, err := prepare(p.s, services, memo)
	if err != nil {
		return nil, err
	}
	full := p.needFullSync
	large := pr.total > largeClusterEndpointsThreshold
	in := syncInput{full: full, prev: p.applied, existing: p.existing, keepState: true}
	rendered, renderedEndpoints := len(pr.svcs), pr.total
	if !full && !p.noMemo && p.memo != nil && large == p.memoLarge {
		ports := make(map[string]int, len(p.memoPorts))
		for _, sp := range pr.svcs {
			ports[sp.nsn]++
		}
		in.unchanged = func(nsn string, n int) bool {
			return !pr.changed[nsn] && p.memoPorts[nsn] == n
		}
		rendered, renderedEndpoints = 0, 0
		for _, sp := range pr.svcs {
			if !in.unchanged(sp.nsn, ports[sp.nsn]) {
				rendered, renderedEndpoints = rendered+1, renderedEndpoints+len(sp.eps)
			}
		}
	}
	out := newRenderer(p.s, len(pr.svcs), pr.total, rendered, renderedEndpoints).run(pr.svcs, in)
	return &SyncResult{Payload: out.payload, Full: full, WrittenChains: out.written, DeletedChains: out.deleted, NATRules: out.natRules,
		out: out, memo: pr.memo, large: large, svcs: pr.svcs, gen: p.gen}, nil
}

// Applied records the outcome of restoring r.Payload. With err == nil the
// kernel now holds r; otherwise nothing is assumed to have changed and the
// next Sync is full. Apply (or drop) each result before the next Sync: a
// result built before another one was applied describes a state the kernel
// no longer has, so applying it makes the next Sync full, which repairs
// whatever it left.
func (p *Proxier) Applied(r *SyncResult, err error) {
	if err != nil || r.gen != p.gen {
		p.needFullSync = true
		return
	}
	p.gen++
	p.needFullSync = false
	p.applied = r.out.content
	p.memo, p.memoLarge = r.memo, r.large
	p.memoPorts = make(map[string]int, len(r.svcs))
	for _, sp := range r.svcs {
		p.memoPorts[sp.nsn]++
	}
	for _, c := range r.out.written {
		p.existing[c] = struct{}{}
	}
	for _, c := range r.out.deleted {
		delete(p.existing, c)
	}
}

// ForceFullSync makes the next Sync full, as kube-proxy does when its
// KUBE-PROXY-CANARY chain disappears (someone flushed iptables).
func (p *Proxier) ForceFullSync() { p.needFullSync = true }

// SetExistingChains replaces the set of nat chains the Proxier believes
// exist, e.g. with ChainsFromSave of `iptables-save -t nat` after a
// restart, so a later sync deletes leftovers. kube-proxy runs
// iptables-save on every sync for this; the lab tracks it instead.
func (p *Proxier) SetExistingChains(chains []Chain) {
	p.existing = make(map[Chain]struct{}, len(chains))
	for _, c := range chains {
		p.existing[c] = struct{}{}
	}
}

// ChainsFromSave returns the chains declared for table in iptables-save
// (or restore) text, like utiliptables.GetChainsFromTable.
func ChainsFromSave(save []byte, table Table) []Chain {
	var chains []Chain
	in := false
	sc := bufio.NewScanner(bytes.NewReader(save))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "*"):
			in = line[1:] == string(table)
		case line == "COMMIT":
			in = false
		case in && strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			chains = append(chains, Chain(name))
		}
	}
	return chains
}
