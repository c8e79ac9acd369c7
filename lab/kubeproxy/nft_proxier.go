package kubeproxy

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// NFTProxier is kube-proxy's nftables mode with its state between syncs,
// so that syncs after the first are partial as upstream's are: every map
// and set element is diffed (added, replaced or deleted one by one), and
// only the chains of Services whose input changed are rewritten. Chains no
// longer used are flushed at once and deleted by a later sync's Cleanup,
// more than a second later.
//
// Use: r, err := p.Sync(services, time.Now()); apply r.Cleanup (if not nil)
// and then r.Tx with `nft -f`; then p.Applied(r, cleanupErr, txErr). A
// failed Tx makes the next Sync full, as in kube-proxy. Not safe for
// concurrent use.
type NFTProxier struct {
	s            *nftSettings
	needFullSync bool
	// recreateBaseChains is true until a full sync with the base-chain
	// add+delete was applied (upstream's "flushed").
	recreateBaseChains bool
	// resetElements makes the next full sync flush the element
	// containers instead of trusting state (after ForceFullSync).
	resetElements bool
	state         *nftState
	memo          map[portKey]*memoPort
	memoPorts     map[string]int
	names         map[*svcPort]*nftPortNames
	gen           int
}

// NFTSyncResult is one rendered nftables sync.
type NFTSyncResult struct {
	// Cleanup deletes the chains made stale by an earlier sync more than a
	// second before now; nil when there are none. Upstream runs it as its
	// own transaction before the sync, so its failure only delays the
	// deletion (and makes the next sync full).
	Cleanup *knftables.Transaction
	// Tx is the sync transaction; Tx.String() is `nft -f` input.
	Tx *knftables.Transaction
	// Full is true for a full sync (base objects and every chain).
	Full bool
	// DeletedChains are the chains Cleanup deletes; StaleChains the ones
	// Tx flushes for a later Cleanup.
	DeletedChains, StaleChains []string

	out *nftState
	// deltas are the element changes per container, applied to the
	// proxier's state by Applied.
	deltas    map[string]map[string]*string
	names     map[*svcPort]*nftPortNames
	memo      map[portKey]*memoPort
	memoPorts map[string]int
	gen       int
	recreated bool
	reset     bool
}

// NewNFTProxier validates cfg and returns a proxier whose first Sync is full.
func NewNFTProxier(cfg NFTConfig) (*NFTProxier, error) {
	s, err := resolveNFT(cfg)
	if err != nil {
		return nil, err
	}
	return &NFTProxier{s: s, needFullSync: true, recreateBaseChains: true, state: newNFTState()}, nil
}

// Sync renders the transactions that bring the kernel from the last applied
// state to services. now dates the chains it makes stale and selects the
// ones Cleanup deletes. It changes no state; Applied does. The error
// reports invalid input only.
func (p *NFTProxier) Sync(services []ServicePort, now time.Time) (*NFTSyncResult, error) {
	if err := validateNFTInput(services); err != nil {
		return nil, err
	}
	memo := p.memo
	if memo == nil {
		memo = map[portKey]*memoPort{}
	}
	pr, err := prepare(p.s.settings, services, memo)
	if err != nil {
		return nil, err
	}
	ports := make(map[string]int, len(pr.svcs))
	for _, sp := range pr.svcs {
		ports[sp.nsn]++
	}
	r := &NFTSyncResult{Full: p.needFullSync, memo: pr.memo, memoPorts: ports, gen: p.gen}

	// The stale-chain cleanup comes first; the sync then sees the chains
	// as gone, as upstream's, which lists them after its cleanup ran.
	prev := *p.state
	prev.stale = make(map[string]time.Time, len(p.state.stale))
	oneSecondAgo := now.Add(-time.Second)
	for _, c := range sortedKeys(p.state.stale) {
		t := p.state.stale[c]
		if !t.Before(oneSecondAgo) {
			prev.stale[c] = t
			continue
		}
		if r.Cleanup == nil {
			r.Cleanup = newNFTTransaction(p.s.family)
		}
		r.Cleanup.Delete(&knftables.Chain{Name: c})
		r.DeletedChains = append(r.DeletedChains, c)
	}
	if len(r.DeletedChains) > 0 {
		// A copy: Sync changes no state.
		prev.chains = maps.Clone(p.state.chains)
		for _, c := range r.DeletedChains {
			delete(prev.chains, c)
		}
	}

	y := &nftSyncer{s: p.s, tx: newNFTTransaction(p.s.family), full: r.Full, now: now, prev: &prev,
		recreateBaseChains: r.Full && p.recreateBaseChains, resetElements: r.Full && p.resetElements, prevNames: p.names,
		updated: func(nsn string) bool { return pr.changed[nsn] || p.memoPorts[nsn] != ports[nsn] }}
	y.run(pr.svcs)
	r.Tx, r.out, r.names = y.tx, y.out, y.names
	r.deltas = make(map[string]map[string]*string, len(y.stores))
	for name, st := range y.stores {
		r.deltas[name] = st.delta
	}
	r.recreated, r.reset = y.recreateBaseChains, y.resetElements
	for c, t := range y.out.stale {
		if t.Equal(now) {
			if _, was := prev.stale[c]; !was {
				r.StaleChains = append(r.StaleChains, c)
			}
		}
	}
	slices.Sort(r.StaleChains)
	return r, nil
}

// Applied records the outcome of applying r: cleanupErr of r.Cleanup (nil
// if there was none) and err of r.Tx. A transaction is atomic, so a failed
// one changed nothing; a failed Tx makes the next Sync full. Apply each
// result before the next Sync: one built on an older state makes the next
// Sync full.
func (p *NFTProxier) Applied(r *NFTSyncResult, cleanupErr, err error) {
	if r.gen != p.gen {
		p.needFullSync = true
		return
	}
	if cleanupErr == nil {
		for _, c := range r.DeletedChains {
			delete(p.state.chains, c)
			delete(p.state.stale, c)
		}
	}
	if err != nil {
		p.needFullSync = true
		return
	}
	p.gen++
	out := r.out
	if cleanupErr != nil {
		// The chains are still there: unless Tx uses them again, they stay
		// stale and the next Sync's Cleanup tries again.
		for _, c := range r.DeletedChains {
			if _, ok := out.chains[c]; !ok {
				out.chains[c] = struct{}{}
				out.stale[c] = time.Time{}
			}
		}
	}
	// The elements change in place: the state is the proxier's alone, and
	// r was rendered from it (r.gen).
	out.elements = p.state.elements
	for name, d := range r.deltas {
		base := out.elements[name]
		if r.reset {
			base = nil
		}
		out.elements[name] = nftApplyDelta(base, d)
	}
	p.state = out
	p.memo, p.memoPorts, p.names = r.memo, r.memoPorts, r.names
	p.needFullSync = cleanupErr != nil
	if r.recreated {
		p.recreateBaseChains = false
	}
	if r.reset {
		p.resetElements = false
	}
}

// ForceFullSync makes the next Sync full and has it flush the element
// containers rather than trust the remembered elements: for when someone
// else changed the table.
func (p *NFTProxier) ForceFullSync() {
	p.needFullSync = true
	p.resetElements = true
}

// validateNFTInput rejects what would make invalid nft text: names go into
// chain names (nft allows [A-Za-z0-9_./-]; '/' separates the parts), and a
// negative affinity timeout.
func validateNFTInput(services []ServicePort) error {
	for i := range services {
		sp := &services[i]
		for _, f := range [...]struct{ field, v string }{{"Namespace", sp.Namespace}, {"Name", sp.Name}, {"PortName", sp.PortName}} {
			if (f.v == "" && f.field != "PortName") || strings.IndexFunc(f.v, notNFTNameRune) >= 0 {
				return fmt.Errorf("%w: %s: %s %q: want letters, digits, '-', '_' or '.'", ErrInvalidServicePort, sp, f.field, f.v)
			}
		}
		if sp.StickyMaxAgeSeconds < 0 {
			return fmt.Errorf("%w: %s: StickyMaxAgeSeconds %d is negative", ErrInvalidServicePort, sp, sp.StickyMaxAgeSeconds)
		}
	}
	return nil
}

func notNFTNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	return keys
}
