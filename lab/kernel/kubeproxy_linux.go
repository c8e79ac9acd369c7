//go:build linux

package kernel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
)

// NodeSync is what kube-proxy did on one node after a change.
type NodeSync struct {
	Node string
	// Full is true when the partial restore failed and kube-proxy fell back
	// to rewriting every chain, as upstream does after a failed restore;
	// Fallback says why.
	Full     bool
	Fallback string
	Bytes    int
	// Written are the per-Service chains the payload (re)wrote; Deleted
	// the stale ones it removed with -X. In nftables mode Written is empty
	// (the proxier reports no list) and Deleted are the chains the sync
	// flushed and its cleanup deleted.
	Written, Deleted []kubeproxy.Chain
	// NFTables is set for a kube-proxy in nftables mode.
	NFTables bool
	// Step is the pod delete step the sync was for.
	Step string
	// ConntrackDeleted counts the stale UDP entries the sync's conntrack
	// cleanup removed.
	ConntrackDeleted int
}

// SyncKubeProxy is kube-proxy's sync on every node after the Services'
// endpoints changed from before to those of t. A running kube-proxy has
// before applied, so each node's Proxier is primed with it (no restore)
// and the change is a partial sync (KEP-3453): the top-level chains, the
// changed Services' chains, and -X for chains no longer used. Chains that
// iptables-save shows beyond those are leftovers, and are deleted too.
func SyncKubeProxy(t *spec.Topology, lab string, nf netfilter.Backend, before []cluster.ServicePort) ([]NodeSync, error) {
	sps := cluster.Endpoints(t)
	var out []NodeSync
	for _, n := range t.Nodes {
		h, err := ns.Open(spec.NSName(lab, n.Name))
		if err != nil {
			return nil, err
		}
		var s NodeSync
		if t.NFTablesMode() {
			s, err = syncNodeNFT(h, NFT, t, n.Name, before, sps)
		} else {
			s, err = syncNode(h, nf, t, n.Name, before, sps)
		}
		h.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		// A kill -9 here leaves some nodes synced and the rest not.
		crash.Point(context.Background(), "pod-synced-"+n.Name)
	}
	return out, nil
}

func syncNode(h *ns.NS, nf netfilter.Backend, t *spec.Topology, node string, before, after []cluster.ServicePort) (NodeSync, error) {
	s := NodeSync{Node: node}
	cfg := cluster.ProxyConfig(t, node)
	// The Proxier is rebuilt for each change, so it probes nfacct as
	// kube-proxy does at start: the objects `up` created are found.
	cfg.NFAcct = EnsureNFAcct(h) == nil
	p, err := kubeproxy.NewProxier(cfg)
	if err != nil {
		return s, err
	}
	primed, err := p.Sync(cluster.ProxyServices(before, node))
	if err != nil {
		return s, err
	}
	p.Applied(primed, nil)
	save, err := nf.Save(h, false, "nat")
	if err != nil {
		return s, err
	}
	p.SetExistingChains(kubeproxy.ChainsFromSave([]byte(save), kubeproxy.TableNAT))
	services := cluster.ProxyServices(after, node)
	res, err := p.Sync(services)
	if err != nil {
		return s, err
	}
	if err := nf.Restore(h, string(res.Payload), true); err != nil {
		// kube-proxy counts a failed partial restore and retries in full.
		s.Fallback = err.Error()
		p.Applied(res, err)
		if res, err = p.Sync(services); err != nil {
			return s, err
		}
		if err2 := nf.Restore(h, string(res.Payload), true); err2 != nil {
			return s, errors.Join(fmt.Errorf("partial sync: %w", err), fmt.Errorf("full sync after it: %w", err2))
		}
		// A full sync also ensures the jumps from the built-in chains.
		if err := ensureJumps(h, nf); err != nil {
			return s, err
		}
	}
	s.Full, s.Bytes, s.Written, s.Deleted = res.Full, len(res.Payload), res.WrittenChains, res.DeletedChains
	n, err := CleanStaleUDP(h, services)
	s.ConntrackDeleted = n
	return s, err
}

// syncNodeNFT is the same sync in nftables mode (kubernetes
// pkg/proxy/nftables/proxier.go, syncProxyRules): an NFTProxier primed with
// before, as the running kube-proxy has applied it, renders a partial
// transaction that replaces changed map elements and rewrites the changed
// Services' chains, and flushes the chains no longer used. Upstream deletes
// those more than a second later, in the cleanup transaction of a later
// sync; the lab renders that sync right after (dated a second on) and
// applies its cleanup, retrying once after a real second if the kernel
// still holds a reference.
func syncNodeNFT(h *ns.NS, prog netfilter.NFTProgram, t *spec.Topology, node string, before, after []cluster.ServicePort) (NodeSync, error) {
	s := NodeSync{Node: node, NFTables: true}
	p, err := kubeproxy.NewNFTProxier(cluster.NFTProxyConfig(t, node))
	if err != nil {
		return s, err
	}
	now := time.Now()
	primed, err := p.Sync(cluster.ProxyServices(before, node), now.Add(-time.Minute))
	if err != nil {
		return s, err
	}
	p.Applied(primed, nil, nil)
	services := cluster.ProxyServices(after, node)
	res, err := p.Sync(services, now)
	if err != nil {
		return s, err
	}
	if err := prog.Apply(h, res.Tx.String()); err != nil {
		// A failed transaction changed nothing; kube-proxy's next sync is
		// full and does not trust its remembered elements.
		s.Fallback = err.Error()
		p.Applied(res, nil, err)
		p.ForceFullSync()
		if res, err = p.Sync(services, now); err != nil {
			return s, err
		}
		if err2 := prog.Apply(h, res.Tx.String()); err2 != nil {
			return s, errors.Join(fmt.Errorf("partial sync: %w", err), fmt.Errorf("full sync after it: %w", err2))
		}
	}
	p.Applied(res, nil, nil)
	s.Full, s.Bytes = res.Full, len(res.Tx.String())
	later := now.Add(time.Second + time.Millisecond)
	for try := 0; ; try++ {
		cl, err := p.Sync(services, later)
		if err != nil {
			return s, err
		}
		var cerr error
		if cl.Cleanup != nil {
			cerr = prog.Apply(h, cl.Cleanup.String())
		}
		// Only the cleanup is applied: cl.Tx changes nothing the kernel
		// needs, and this proxier is dropped after the step.
		p.Applied(cl, cerr, nil)
		if cerr == nil {
			for _, c := range cl.DeletedChains {
				s.Deleted = append(s.Deleted, kubeproxy.Chain(c))
			}
			break
		}
		if try == 1 {
			return s, fmt.Errorf("deleting stale kube-proxy chains: %w", cerr)
		}
		// Kernels before 6.2 release a flushed chain's references late.
		time.Sleep(time.Second)
	}
	// Chains an earlier sync left (a crash between a sync and its cleanup)
	// are not in the proxier's state: the kernel's listing finds them.
	listing, err := prog.List(h, kubeproxy.NFTTable)
	if err != nil {
		return s, err
	}
	full, err := kubeproxy.RenderNFTTransaction(cluster.NFTProxyConfig(t, node), services)
	if err != nil {
		return s, err
	}
	if left := nftLeftoverChains(nftTableChains(listing), nftScriptChains(full.String(), kubeproxy.NFTTable)); len(left) > 0 {
		if err := prog.Apply(h, nftDeleteChains(kubeproxy.NFTTable, left)); err != nil {
			return s, fmt.Errorf("deleting leftover kube-proxy chains %v: %w", left, err)
		}
		for _, c := range left {
			s.Deleted = append(s.Deleted, kubeproxy.Chain(c))
		}
	}
	n, err := CleanStaleUDP(h, services)
	s.ConntrackDeleted = n
	return s, err
}

// CleanStaleUDP deletes the node's UDP conntrack entries that no serving
// endpoint answers, as kube-proxy does after every sync
// (kubeproxy.StaleUDPFlows); it returns how many went.
func CleanStaleUDP(h *ns.NS, services []kubeproxy.ServicePort) (int, error) {
	flows, err := h.NL.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		return 0, fmt.Errorf("conntrack -L in %s: %w", h.Name, err)
	}
	var udp []kubeproxy.UDPFlow
	for _, f := range flows {
		if f.Forward.Protocol == unix.IPPROTO_UDP {
			udp = append(udp, udpFlow(f))
		}
	}
	stale := map[kubeproxy.UDPFlow]bool{}
	for _, f := range kubeproxy.StaleUDPFlows(services, udp) {
		stale[f] = true
	}
	if len(stale) == 0 {
		return 0, nil
	}
	n, err := h.NL.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.FAMILY_V4, staleFilter(stale))
	if err != nil {
		return int(n), fmt.Errorf("conntrack -D in %s: %w", h.Name, err)
	}
	return int(n), nil
}

func udpFlow(f *netlink.ConntrackFlow) kubeproxy.UDPFlow {
	dst, _ := netip.AddrFromSlice(f.Forward.DstIP.To4())
	src, _ := netip.AddrFromSlice(f.Reverse.SrcIP.To4())
	return kubeproxy.UDPFlow{OrigDst: netip.AddrPortFrom(dst, f.Forward.DstPort), ReplySrc: src}
}

// staleFilter matches the UDP entries found stale.
type staleFilter map[kubeproxy.UDPFlow]bool

func (s staleFilter) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	return f.Forward.Protocol == unix.IPPROTO_UDP && s[udpFlow(f)]
}

// ensureJumps puts back kube-proxy's jump rules that a node lacks, as
// kube-proxy does on every full sync.
func ensureJumps(h *ns.NS, nf netfilter.Backend) error {
	save, err := nf.Save(h, false)
	if err != nil {
		return err
	}
	if payload := kubeproxy.EnsureJumps([]byte(save)); payload != "" {
		return nf.Restore(h, payload, true)
	}
	return nil
}
