// Package kubeproxy renders, for one node, the iptables-restore payload that
// upstream kube-proxy's iptables mode writes, byte for byte where upstream's
// golden files pin it down.
//
// It is pure Go: no exec, no netlink, no root. A caller (the lab's apply
// step) feeds the payload to `iptables-restore --noflush` inside a worker's
// network namespace. Keeping the renderer pure means it is unit-tested
// against kube-proxy's own test vectors (testdata/) on any OS.
//
// What is here:
//   - chain-name hashing identical to kube-proxy (names.go), so lab dumps can
//     be diffed against `iptables-save` from a real EKS node;
//   - [Render], a stateless full sync;
//   - [Proxier], the stateful partial sync of KEP-3453 (MinimizeIPTablesRestore);
//   - [JumpRules], [JumpRestoreLines] and [InitialRestore], the hooks from the
//     built-in chains that kube-proxy ensures outside the payload;
//   - kube-proxy's health-check answers (health.go).
//
// The behaviour follows kubernetes/kubernetes pkg/proxy/iptables/proxier.go
// (syncProxyRules, at commit 531be81208e2). Deliberate
// differences from upstream:
//   - Services are emitted sorted (namespace/name/port) and endpoints by
//     "ip:port"; upstream iterates a map, so any order is "correct" and
//     upstream's tests normalise before comparing.
//   - The nat chain declarations come in reverse name order, not grouped by
//     Service: iptables-nft restores that much faster (see assemble).
//   - Zone hints filter Cluster endpoints as pkg/proxy/topology.go does
//     (Config.Zone is the node's zone label); node hints (PreferSameNode)
//     are not modelled.
//   - Partial syncs decide what changed by comparing each Service's rendered
//     nat chains with the last applied ones, not by watching API events; the
//     kernel ends up identical.
//   - Stale chains are tracked rather than read with iptables-save, and are
//     cleaned on every sync, even in large-cluster mode.
package kubeproxy
