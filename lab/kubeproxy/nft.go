package kubeproxy

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/knftables"
)

// This file is kube-proxy's nftables mode: the same ServicePort input as the
// iptables renderer, written as a knftables transaction for the table
// "ip kube-proxy" (or "ip6 kube-proxy"). It follows
// kubernetes/kubernetes pkg/proxy/nftables/proxier.go at commit
// 531be81208e2274ef42e72525a26610a9622bcdf (setupNFTables and
// syncProxyRules) statement by statement, so that a knftables.Fake dump of
// the result equals the expected dumps of upstream's proxier_test.go.
// Deliberate differences:
//   - The kernel state is tracked, not listed: the proxier remembers the
//     chains, affinity sets and map elements it applied instead of asking
//     nft (upstream's List/ListElements). A ForceFullSync flushes the six
//     element containers, which is upstream's path when listing fails.
//   - epChainSkipUpdate (skip rewriting endpoint chains on the first sync
//     after a kube-proxy restart) never skips: the lab always starts clean.
//   - Services are written sorted (namespace/name/port) and endpoints by
//     "ip:port"; upstream iterates a map. Only the transaction's order
//     differs: rules within a chain and the vmap indices are the same.
//   - Whether a Service changed is decided by comparing its input with the
//     last applied one, not by API events; the rewritten chains are the same.
//   - Topology hints are not modelled, as in the iptables renderer.
//   - Health-check node ports get no nftables rule, exactly as upstream: the
//     nftables mode has no per-port ACCEPT rules; the health check server
//     (health.go) answers on them.

// NFTConfig is the configuration of the nftables mode: the iptables-mode
// Config (masquerade mark, cluster CIDR, node IPs, NodePort addresses,
// masquerade-all) plus what only nftables uses. LocalhostNodePorts, NFAcct,
// RandomFully and ConntrackTCPLiberal are iptables-only and ignored here:
// nftables NodePorts never answer on 127.0.0.1 and masquerading is always
// "fully-random".
//
// NodePortAddresses keeps Config's meaning (empty matches every local
// address). kube-proxy's nftables default, `--nodeport-addresses primary`,
// is the node's primary IP as a /32 (or /128); set that to get it.
type NFTConfig struct {
	Config
	// ServiceCIDRs are the cluster's Service CIDRs (ServiceCIDR objects);
	// those of the proxier's family make the "Drop traffic to unallocated
	// ClusterIPs" rule. None: no such rule.
	ServiceCIDRs []netip.Prefix
}

// nftSettings is a validated NFTConfig.
type nftSettings struct {
	*settings
	family       knftables.Family
	ipX          string // "ip" or "ip6"
	addrType     string // "ipv4_addr" or "ipv6_addr"
	noLocalhost  string
	podCIDR      string // ClusterCIDR of this family as configured; "" = no-op detector
	serviceCIDRs string // comma-separated, as upstream's serviceCIDRs field
	nodePortIPs  []string
}

func resolveNFT(cfg NFTConfig) (*nftSettings, error) {
	s, err := resolve(cfg.Config)
	if err != nil {
		return nil, fmt.Errorf("kube-proxy nftables config: %w", err)
	}
	if _, err := strconv.ParseUint(s.mark, 0, 32); err != nil {
		return nil, fmt.Errorf("kube-proxy nftables config: MasqueradeMark %q is not a 32-bit number", s.mark)
	}
	n := &nftSettings{settings: s, family: knftables.IPv4Family, ipX: "ip", addrType: "ipv4_addr",
		noLocalhost: "ip daddr != 127.0.0.0/8"}
	if s.ipv6 {
		n.family, n.ipX, n.addrType, n.noLocalhost = knftables.IPv6Family, "ip6", "ipv6_addr", "ip6 daddr != ::1"
	}
	if s.ifLocal != nil {
		n.podCIDR = s.ifLocal[1]
	}
	var cidrs []string
	for i, p := range cfg.ServiceCIDRs {
		if !p.IsValid() {
			return nil, fmt.Errorf("kube-proxy nftables config: ServiceCIDRs[%d] is not a valid prefix", i)
		}
		if p.Addr().Unmap().Is6() == s.ipv6 {
			cidrs = append(cidrs, p.Masked().String())
		}
	}
	n.serviceCIDRs = strings.Join(cidrs, ",")
	for _, ip := range s.nodePortIPs {
		// Upstream logs "localhost NodePorts are not supported" and skips it.
		if a, err := netip.ParseAddr(ip); err == nil && !a.IsLoopback() {
			n.nodePortIPs = append(n.nodePortIPs, ip)
		}
	}
	return n, nil
}

// nftElementStore is upstream's nftElementStorage: the elements of one set
// or map as the kernel holds them, so a sync only adds, replaces and
// deletes what differs. Keys and values are joined with " . ". base is the
// applied state and is never written: the sync's changes go to delta and
// reach the proxier's state only in Applied, so a partial sync costs the
// changed elements, not a copy of every element.
type nftElementStore struct {
	kind, name string // "set" or "map", and its name
	base       map[string]string
	// delta maps a key to its new value, or to nil once deleted.
	delta map[string]*string
	// seen are the keys ensured in this sync; the other keys of base are
	// leftovers that cleanup deletes.
	seen map[string]struct{}
}

func newNFTElementStore(kind, name string, base map[string]string) *nftElementStore {
	return &nftElementStore{kind: kind, name: name, base: base, delta: map[string]*string{},
		seen: make(map[string]struct{}, len(base))}
}

func joinNFT(k []string) string { return strings.Join(k, " . ") }

// get returns the element's value as it will be once the sync is applied.
func (st *nftElementStore) get(k string) (string, bool) {
	if v, ok := st.delta[k]; ok {
		if v == nil {
			return "", false
		}
		return *v, true
	}
	v, ok := st.base[k]
	return v, ok
}

// ensure is upstream's ensureElem.
func (st *nftElementStore) ensure(tx *knftables.Transaction, elem *knftables.Element) {
	k, v := joinNFT(elem.Key), joinNFT(elem.Value)
	st.seen[k] = struct{}{}
	if old, ok := st.get(k); ok {
		if old != v {
			tx.Delete(elem)
			tx.Add(elem)
			st.delta[k] = &v
		}
		return
	}
	tx.Add(elem)
	st.delta[k] = &v
}

// nftLeftovers returns the keys of base not in seen, sorted.
func nftLeftovers(base map[string]string, seen map[string]struct{}) []string {
	var left []string
	for k := range base {
		if _, ok := seen[k]; !ok {
			left = append(left, k)
		}
	}
	slices.Sort(left)
	return left
}

// cleanup is upstream's cleanupLeftoverKeys, in key order so that the
// transaction text is deterministic.
func (st *nftElementStore) cleanup(tx *knftables.Transaction) {
	for _, k := range nftLeftovers(st.base, st.seen) {
		e := &knftables.Element{Key: strings.Split(k, " . ")}
		if st.kind == "set" {
			e.Set = st.name
		} else {
			e.Map = st.name
		}
		tx.Delete(e)
		st.delta[k] = nil
	}
}

// nftApplyDelta returns base with delta applied, writing into base itself
// when it is not nil (the caller owns it) and into a new map otherwise.
func nftApplyDelta(base map[string]string, delta map[string]*string) map[string]string {
	if base == nil {
		base = make(map[string]string, len(delta))
	}
	for k, v := range delta {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = *v
		}
	}
	return base
}

// nftState is what the proxier believes the kernel holds.
type nftState struct {
	// elements maps container name to its elements (key -> value).
	elements map[string]map[string]string
	// chains are the per-service/endpoint chains that exist, including
	// flushed stale ones not deleted yet.
	chains map[string]struct{}
	// affinitySets are the affinity-* sets that exist.
	affinitySets map[string]struct{}
	// stale maps flushed chains to the time they became unused.
	stale map[string]time.Time
}

func newNFTState() *nftState {
	return &nftState{elements: map[string]map[string]string{}, chains: map[string]struct{}{},
		affinitySets: map[string]struct{}{}, stale: map[string]time.Time{}}
}

// nftContainers are the six element containers in upstream's order.
var nftContainers = [...]struct{ kind, name string }{
	{"set", nftClusterIPsSet}, {"map", nftServiceIPsMap}, {"map", nftFirewallIPsMap},
	{"map", nftNoEndpointServices}, {"map", nftNoEndpointNodePorts}, {"map", nftServiceNodePortsMap},
}

// nftSyncer builds one sync transaction.
type nftSyncer struct {
	s  *nftSettings
	tx *knftables.Transaction
	// full is a full sync: base objects and every service's chains.
	full bool
	// recreateBaseChains adds and deletes every base chain first, as
	// upstream's first sync does, so a changed priority does not fail.
	recreateBaseChains bool
	// resetElements flushes the element containers and starts from empty.
	resetElements bool
	// updated reports a Service (namespace/name) whose chains must be
	// rewritten on a partial sync.
	updated func(nsn string) bool
	now     time.Time

	prev         *nftState
	stores       map[string]*nftElementStore
	activeChains map[string]struct{}
	// prevNames are the names of the last applied sync's ports, reused
	// while a port is unchanged (hashing every name is most of a partial
	// sync's cost); names are this sync's.
	prevNames, names map[*svcPort]*nftPortNames
	activeSets       map[string]struct{}
	// out is the state once the transaction is applied.
	out *nftState
}

// ensureChain is upstream's ensureChain: add and flush a chain once per
// transaction; with skip it only counts as active.
func (y *nftSyncer) ensureChain(chain string, created map[string]struct{}, skip bool) {
	if _, ok := created[chain]; ok {
		return
	}
	created[chain] = struct{}{}
	if skip {
		return
	}
	y.tx.Add(&knftables.Chain{Name: chain})
	y.tx.Flush(&knftables.Chain{Name: chain})
}

func (y *nftSyncer) rule(chain string, args ...any) {
	y.tx.Add(&knftables.Rule{Chain: chain, Rule: knftables.Concat(args...)})
}

func (y *nftSyncer) ruleComment(chain, comment string, args ...any) {
	y.tx.Add(&knftables.Rule{Chain: chain, Rule: knftables.Concat(args...), Comment: knftables.PtrTo(comment)})
}

// nftBaseChains is upstream's nftablesBaseChains: "${type}-${hook}".
var nftBaseChains = [...]struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}{
	// pre-DNAT filter chains see the LB IP and port before DNAT, for
	// loadBalancerSourceRanges.
	{nftFilterPreroutingPreDNAT, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority + "-10"},
	{nftFilterOutputPreDNAT, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10"},
	{nftFilterInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority},
	{nftFilterForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority},
	{nftFilterOutput, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority},
	{nftNATPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	{nftNATOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority},
	{nftNATPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
}

// nftJumpChains is upstream's nftablesJumpChains. The endpoint checks hang
// off input/forward/output, not prerouting, because "reject" is only valid
// there on kernels before 5.9.
var nftJumpChains = [...]struct{ dst, src, extra string }{
	{nftNodePortEndpointsChk, nftFilterInput, "ct state new"},
	{nftServiceEndpointsChk, nftFilterInput, "ct state new"},
	{nftServiceEndpointsChk, nftFilterForward, "ct state new"},
	{nftServiceEndpointsChk, nftFilterOutput, "ct state new"},
	{nftFirewallCheck, nftFilterPreroutingPreDNAT, "ct state new"},
	{nftFirewallCheck, nftFilterOutputPreDNAT, "ct state new"},
	{nftServicesChain, nftNATOutput, ""},
	{nftServicesChain, nftNATPrerouting, ""},
	{nftMasqueradingChain, nftNATPostrouting, ""},
	{nftClusterIPsCheck, nftFilterForward, "ct state new"},
	{nftClusterIPsCheck, nftFilterOutput, "ct state new"},
}

// setup is upstream's setupNFTables: the table, base chains, the fixed
// chains with their rules, and the sets and maps, written on every full sync.
func (y *nftSyncer) setup() {
	s, tx := y.s, y.tx
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("rules for kube-proxy")})
	if y.recreateBaseChains {
		for _, bc := range nftBaseChains {
			c := &knftables.Chain{Name: bc.name}
			tx.Add(c)
			tx.Delete(c)
		}
	}
	for _, bc := range nftBaseChains {
		c := &knftables.Chain{Name: bc.name, Type: knftables.PtrTo(bc.typ), Hook: knftables.PtrTo(bc.hook),
			Priority: knftables.PtrTo(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
	}
	created := map[string]struct{}{}
	for _, j := range nftJumpChains {
		y.ensureChain(j.dst, created, false)
		y.rule(j.src, j.extra, "jump", j.dst)
	}
	for _, c := range []string{nftServicesChain, nftClusterIPsCheck, nftMasqueradingChain, nftMarkMasqChain} {
		y.ensureChain(c, created, false)
	}
	y.rule(nftMarkMasqChain, "mark", "set", "mark", "or", s.mark)
	y.rule(nftMasqueradingChain, "mark", "and", s.mark, "==", "0", "return")
	y.rule(nftMasqueradingChain, "mark", "set", "mark", "xor", s.mark)
	y.rule(nftMasqueradingChain, "masquerade fully-random")

	tx.Add(&knftables.Set{Name: nftClusterIPsSet, Type: s.addrType, Comment: knftables.PtrTo("Active ClusterIPs")})
	y.ruleComment(nftClusterIPsCheck, "Reject traffic to invalid ports of ClusterIPs",
		s.ipX, "daddr", "@", nftClusterIPsSet, "reject")
	if s.serviceCIDRs != "" {
		y.ruleComment(nftClusterIPsCheck, "Drop traffic to unallocated ClusterIPs",
			s.ipX, "daddr", "{", s.serviceCIDRs, "}", "drop")
	}

	// add+delete, not delete alone, which fails when the set is absent.
	tx.Add(&knftables.Set{Name: nftNodePortIPsSet, Type: s.addrType, Comment: knftables.PtrTo("IPs that accept NodePort traffic")})
	if s.nodePortMatchAll {
		tx.Delete(&knftables.Set{Name: nftNodePortIPsSet})
	} else {
		tx.Flush(&knftables.Set{Name: nftNodePortIPsSet})
		for _, ip := range s.nodePortIPs {
			tx.Add(&knftables.Element{Set: nftNodePortIPsSet, Key: []string{ip}})
		}
	}

	tx.Add(&knftables.Map{Name: nftNoEndpointServices, Type: s.addrType + " . inet_proto . inet_service : verdict",
		Comment: knftables.PtrTo("vmap to drop or reject packets to services with no endpoints")})
	tx.Add(&knftables.Map{Name: nftNoEndpointNodePorts, Type: "inet_proto . inet_service : verdict",
		Comment: knftables.PtrTo("vmap to drop or reject packets to service nodeports with no endpoints")})
	tx.Add(&knftables.Chain{Name: nftRejectChain, Comment: knftables.PtrTo("helper for @no-endpoint-services / @no-endpoint-nodeports")})
	tx.Flush(&knftables.Chain{Name: nftRejectChain})
	y.rule(nftRejectChain, "reject")
	y.rule(nftServiceEndpointsChk, s.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", nftNoEndpointServices)
	if s.nodePortMatchAll {
		y.rule(nftNodePortEndpointsChk, s.noLocalhost, "meta l4proto . th dport", "vmap", "@", nftNoEndpointNodePorts)
	} else {
		y.rule(nftNodePortEndpointsChk, s.ipX, "daddr", "@", nftNodePortIPsSet, "meta l4proto . th dport", "vmap", "@", nftNoEndpointNodePorts)
	}

	tx.Add(&knftables.Map{Name: nftFirewallIPsMap, Type: s.addrType + " . inet_proto . inet_service : verdict",
		Comment: knftables.PtrTo("destinations that are subject to LoadBalancerSourceRanges")})
	y.ensureChain(nftFirewallCheck, created, false)
	y.rule(nftFirewallCheck, s.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", nftFirewallIPsMap)

	tx.Add(&knftables.Map{Name: nftServiceIPsMap, Type: s.addrType + " . inet_proto . inet_service : verdict",
		Comment: knftables.PtrTo("ClusterIP, ExternalIP and LoadBalancer IP traffic")})
	tx.Add(&knftables.Map{Name: nftServiceNodePortsMap, Type: "inet_proto . inet_service : verdict",
		Comment: knftables.PtrTo("NodePort traffic")})
	y.rule(nftServicesChain, s.ipX, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", nftServiceIPsMap)
	if s.nodePortMatchAll {
		y.rule(nftServicesChain, "fib daddr type local", s.noLocalhost, "meta l4proto . th dport", "vmap", "@", nftServiceNodePortsMap)
	} else {
		y.rule(nftServicesChain, s.ipX, "daddr @nodeport-ips", "meta l4proto . th dport", "vmap", "@", nftServiceNodePortsMap)
	}

	if y.resetElements {
		// Upstream's readOrReset when the elements cannot be listed.
		for _, c := range nftContainers {
			if c.kind == "set" {
				tx.Flush(&knftables.Set{Name: c.name})
			} else {
				tx.Flush(&knftables.Map{Name: c.name})
			}
		}
	}
}

// nftPortNames are one port's chain and set names.
type nftPortNames struct {
	cluster, local, external, firewall string
	// endpoint and affinity map an endpoint's "ip:port" to its names.
	endpoint, affinity map[string]string
}

func nftNames(sp *svcPort) nftPortNames {
	ns, name, _ := strings.Cut(sp.nsn, "/")
	base := NFTServicePortChainNameBase(ns, name, sp.proto, sp.portName)
	n := nftPortNames{cluster: nftPrefixService + base, local: nftPrefixLocal + base,
		external: nftPrefixExternal + base, firewall: nftPrefixFirewall + base,
		endpoint: make(map[string]string, len(sp.eps)), affinity: make(map[string]string, len(sp.eps))}
	for i := range sp.eps {
		e := &sp.eps[i]
		epBase := NFTEndpointChainNameBase(ns, name, sp.proto, sp.portName, e.ip, strconv.Itoa(int(e.Port)))
		n.endpoint[e.str], n.affinity[e.str] = nftPrefixEndpoint+epBase, nftPrefixAffinity+epBase
	}
	return n
}

// portNames returns sp's names, from the last sync if sp was unchanged.
func (y *nftSyncer) portNames(sp *svcPort) *nftPortNames {
	n := y.prevNames[sp]
	if n == nil {
		v := nftNames(sp)
		n = &v
	}
	y.names[sp] = n
	return n
}

// servicePort is the per-port body of upstream's syncProxyRules loop.
func (y *nftSyncer) servicePort(sp *svcPort) {
	s, tx, p := y.s, y.tx, &sp.plan
	n := y.portNames(sp)
	skip := !y.full && !y.updated(sp.nsn)

	for _, ep := range p.c.all {
		y.ensureChain(n.endpoint[ep.str], y.activeChains, skip)
		if sp.affinity {
			y.activeSets[n.affinity[ep.str]] = struct{}{}
		}
	}
	if p.usesClusterPolicyChain {
		y.ensureChain(n.cluster, y.activeChains, skip)
	}
	if p.usesLocalPolicyChain {
		y.ensureChain(n.local, y.activeChains, skip)
	}
	internalChain := n.cluster
	if sp.internalLocal {
		internalChain = n.local
	}
	externalPolicyChain := n.cluster
	if sp.externalLocal {
		externalPolicyChain = n.local
	}
	if p.usesExternalChain {
		y.ensureChain(n.external, y.activeChains, skip)
	}

	var internalVerdict, externalVerdict string
	if !p.c.hasAny {
		internalVerdict, externalVerdict = "goto "+nftRejectChain, "goto "+nftRejectChain
	} else {
		if !p.hasInternalEndpoints {
			internalVerdict = "drop"
		}
		if !p.hasExternalEndpoints {
			externalVerdict = "drop"
		}
	}
	comment := knftables.PtrTo(sp.spn)
	ips, noEP := y.stores[nftServiceIPsMap], y.stores[nftNoEndpointServices]

	y.stores[nftClusterIPsSet].ensure(tx, &knftables.Element{Set: nftClusterIPsSet, Key: []string{sp.cip}})
	if p.hasInternalEndpoints {
		ips.ensure(tx, &knftables.Element{Map: nftServiceIPsMap, Key: []string{sp.cip, sp.proto, sp.port},
			Value: []string{"goto " + internalChain}})
	} else {
		noEP.ensure(tx, &knftables.Element{Map: nftNoEndpointServices, Key: []string{sp.cip, sp.proto, sp.port},
			Value: []string{internalVerdict}, Comment: comment})
	}
	for _, eip := range sp.externalIPs {
		if p.c.hasAny {
			ips.ensure(tx, &knftables.Element{Map: nftServiceIPsMap, Key: []string{eip, sp.proto, sp.port},
				Value: []string{"goto " + n.external}})
		}
		if !p.hasExternalEndpoints {
			noEP.ensure(tx, &knftables.Element{Map: nftNoEndpointServices, Key: []string{eip, sp.proto, sp.port},
				Value: []string{externalVerdict}, Comment: comment})
		}
	}
	// Unlike the iptables mode, the firewall does not depend on endpoints.
	usesFW := len(sp.lbIPs) > 0 && len(sp.sourceRanges) > 0
	if usesFW {
		y.ensureChain(n.firewall, y.activeChains, skip)
	}
	for _, lbip := range sp.lbIPs {
		if p.c.hasAny {
			ips.ensure(tx, &knftables.Element{Map: nftServiceIPsMap, Key: []string{lbip, sp.proto, sp.port},
				Value: []string{"goto " + n.external}})
		}
		if usesFW {
			y.stores[nftFirewallIPsMap].ensure(tx, &knftables.Element{Map: nftFirewallIPsMap,
				Key: []string{lbip, sp.proto, sp.port}, Value: []string{"goto " + n.firewall}})
		}
	}
	if !p.hasExternalEndpoints {
		for _, lbip := range sp.lbIPs {
			noEP.ensure(tx, &knftables.Element{Map: nftNoEndpointServices, Key: []string{lbip, sp.proto, sp.port},
				Value: []string{externalVerdict}, Comment: comment})
		}
	}
	if sp.nodePort != "" {
		// NodePorts are not subject to loadBalancerSourceRanges.
		if p.c.hasAny {
			y.stores[nftServiceNodePortsMap].ensure(tx, &knftables.Element{Map: nftServiceNodePortsMap,
				Key: []string{sp.proto, sp.nodePort}, Value: []string{"goto " + n.external}})
		}
		if !p.hasExternalEndpoints {
			y.stores[nftNoEndpointNodePorts].ensure(tx, &knftables.Element{Map: nftNoEndpointNodePorts,
				Key: []string{sp.proto, sp.nodePort}, Value: []string{externalVerdict}, Comment: comment})
		}
	}
	if skip {
		return
	}

	if p.hasInternalEndpoints {
		switch {
		case s.masqueradeAll:
			y.rule(internalChain, s.ipX, "daddr", sp.cip, "jump", nftMarkMasqChain)
		case s.podCIDR != "":
			// Off-cluster traffic to a ClusterIP (a static route to the
			// service range via this node) may bounce off-node: masquerade.
			y.rule(internalChain, s.ipX, "daddr", sp.cip, s.ipX, "saddr", "!=", s.podCIDR, "jump", nftMarkMasqChain)
		}
	}
	if p.usesExternalChain {
		if !sp.externalLocal {
			// Endpoints may be on other nodes: masquerade.
			y.rule(n.external, "jump", nftMarkMasqChain)
		} else {
			if s.podCIDR != "" {
				// Pod -> external IP skips both policies, as if it had gone
				// out to the load balancer and come back.
				y.ruleComment(n.external, "short-circuit pod traffic", s.ipX, "saddr", s.podCIDR, "goto", n.cluster)
			}
			// The node's own traffic: the LB IP is local, so it would be
			// the source; masquerade and send it to the cluster chain.
			y.ruleComment(n.external, "masquerade local traffic", "fib", "saddr", "type", "local", "jump", nftMarkMasqChain)
			y.ruleComment(n.external, "short-circuit local traffic", "fib", "saddr", "type", "local", "goto", n.cluster)
		}
		if p.hasExternalEndpoints {
			y.rule(n.external, "goto", externalPolicyChain)
		}
	}
	if usesFW {
		var sources []string
		allowFromNode := false
		for _, cidr := range sp.sourceRanges {
			if len(sources) > 0 {
				sources = append(sources, ",")
			}
			sources = append(sources, cidr.String())
			if s.nodeIP.IsValid() && cidr.Contains(s.nodeIP) {
				allowFromNode = true
			}
		}
		// A VIP-like LB IP is often a local address: node -> VIP then
		// arrives with the VIP as source. Let it through.
		if allowFromNode {
			for _, lbip := range sp.lbIPs {
				sources = append(sources, ",", lbip)
			}
		}
		y.rule(n.firewall, s.ipX, "saddr", "!=", "{", sources, "}", "drop")
	}
	if sp.affinity {
		sticky, _ := strconv.Atoi(sp.sticky)
		for _, ep := range p.c.all {
			// "dynamic" too: some kernels add it anyway, and re-adding
			// the set without it would then fail (upstream's note).
			tx.Add(&knftables.Set{Name: n.affinity[ep.str], Type: s.addrType,
				Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
				Timeout: knftables.PtrTo(time.Duration(sticky) * time.Second)})
		}
	}
	if p.usesClusterPolicyChain {
		y.serviceToEndpoints(sp, n, n.cluster, p.c.cluster)
	}
	if p.usesLocalPolicyChain {
		y.serviceToEndpoints(sp, n, n.local, p.c.local)
	}
	for _, ep := range p.c.all {
		chain := n.endpoint[ep.str]
		// Hairpin: a pod reaching itself through the Service.
		y.rule(chain, s.ipX, "saddr", ep.ip, "jump", nftMarkMasqChain)
		if sp.affinity {
			y.rule(chain, "update", "@", n.affinity[ep.str], "{", s.ipX, "saddr", "}")
		}
		y.rule(chain, "meta l4proto", sp.proto, "dnat to", ep.str)
	}
}

// serviceToEndpoints is upstream's writeServiceToEndpointRules: affinity
// lookups, then a single numgen vmap over the endpoints (no probability
// cascade as in iptables).
func (y *nftSyncer) serviceToEndpoints(sp *svcPort, n *nftPortNames, chain string, eps []*epInfo) {
	if sp.affinity {
		for _, ep := range eps {
			y.rule(chain, y.s.ipX, "saddr", "@", n.affinity[ep.str], "goto", n.endpoint[ep.str])
		}
	}
	var elements []string
	for i, ep := range eps {
		elements = append(elements, strconv.Itoa(i), ":", "goto", n.endpoint[ep.str])
		if i != len(eps)-1 {
			elements = append(elements, ",")
		}
	}
	y.rule(chain, "numgen random mod", len(eps), "vmap", "{", elements, "}")
}

// run writes the whole sync into y.tx and computes y.out (its elements
// are left nil: the change to them is in y.stores' deltas).
func (y *nftSyncer) run(svcs []*svcPort) {
	if y.full {
		y.setup()
	}
	y.stores = make(map[string]*nftElementStore, len(nftContainers))
	for _, c := range nftContainers {
		var from map[string]string
		if !y.resetElements {
			from = y.prev.elements[c.name]
		}
		y.stores[c.name] = newNFTElementStore(c.kind, c.name, from)
	}
	y.activeChains = make(map[string]struct{}, len(y.prev.chains))
	y.activeSets = map[string]struct{}{}
	y.names = make(map[*svcPort]*nftPortNames, len(svcs))
	for _, sp := range svcs {
		y.servicePort(sp)
	}

	out := &nftState{chains: maps.Clone(y.prev.chains), affinitySets: map[string]struct{}{},
		stale: maps.Clone(y.prev.stale)}
	if out.chains == nil {
		out.chains = map[string]struct{}{}
	}
	if out.stale == nil {
		out.stale = map[string]time.Time{}
	}
	// Unused chains are flushed now and deleted over a second later:
	// before kernel 6.2 a chain stays referenced for a moment after the
	// map element that pointed to it is gone. Chains already stale are
	// flushed (and dated) again, as upstream does.
	for _, c := range nftUnusedChains(y.prev.chains, y.activeChains) {
		y.tx.Flush(&knftables.Chain{Name: c})
		out.stale[c] = y.now
	}
	for c := range y.prev.stale {
		if _, ok := y.activeChains[c]; ok {
			delete(out.stale, c)
		}
	}
	// Unused affinity sets can go at once.
	for _, set := range sortedKeys(y.prev.affinitySets) {
		if _, ok := y.activeSets[set]; !ok {
			y.tx.Delete(&knftables.Set{Name: set})
		}
	}
	for _, c := range nftContainers {
		y.stores[c.name].cleanup(y.tx)
	}
	for c := range y.activeChains {
		out.chains[c] = struct{}{}
	}
	for set := range y.activeSets {
		out.affinitySets[set] = struct{}{}
	}
	y.out = out
}

// nftUnusedChains returns the per-service and per-endpoint chains of
// existing that are not in active, sorted: the chains a sync flushes.
func nftUnusedChains(existing, active map[string]struct{}) []string {
	var unused []string
	for c := range existing {
		if !isNFTServiceChainName(c) {
			continue
		}
		if _, ok := active[c]; !ok {
			unused = append(unused, c)
		}
	}
	slices.Sort(unused)
	return unused
}

// newNFTTransaction returns an empty transaction for the proxier's table.
// It comes from a knftables.Fake, which only supplies the family and table
// name: nothing here runs nft.
func newNFTTransaction(family knftables.Family) *knftables.Transaction {
	return knftables.NewFake(family, NFTTable).NewTransaction()
}

// NewNFTFake returns an empty knftables.Fake for the proxier's table, to run
// rendered transactions against (tests, dry runs, RenderNFT).
func NewNFTFake(ipv6 bool) *knftables.Fake {
	if ipv6 {
		return knftables.NewFake(knftables.IPv6Family, NFTTable)
	}
	return knftables.NewFake(knftables.IPv4Family, NFTTable)
}

// RenderNFTTransaction returns the transaction of kube-proxy's first full
// sync on a node without a kube-proxy table: what kube-proxy's nftables
// mode writes at startup. Its String() is `nft -f` input.
func RenderNFTTransaction(cfg NFTConfig, services []ServicePort) (*knftables.Transaction, error) {
	p, err := NewNFTProxier(cfg)
	if err != nil {
		return nil, err
	}
	r, err := p.Sync(services, time.Time{})
	if err != nil {
		return nil, err
	}
	return r.Tx, nil
}

// RenderNFT returns the table a full sync leaves, as `nft -f` text:
// the knftables.Fake dump (objects, then rules, then elements, all "add")
// after running RenderNFTTransaction on an empty Fake. It is the form
// upstream's tests compare, and it loads into a namespace that has no
// "kube-proxy" table of the family yet.
func RenderNFT(cfg NFTConfig, services []ServicePort) (string, error) {
	tx, err := RenderNFTTransaction(cfg, services)
	if err != nil {
		return "", err
	}
	fake := NewNFTFake(cfg.IPv6)
	if err := fake.Run(context.Background(), tx); err != nil {
		return "", fmt.Errorf("kube-proxy nftables render: %w", err)
	}
	return fake.Dump(), nil
}
