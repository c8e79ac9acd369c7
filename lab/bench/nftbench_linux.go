//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
)

// NFTablesBackend is the Backend name a ProxyBenchResult of kube-proxy's
// nftables mode carries.
const NFTablesBackend = "nftables"

// benchServices are services ClusterIPs in 172.20.0.0/16 (the generated
// lab's Service CIDR) with endpoints 10.<1+j>.<i/256>.<i%256>:8080.
func benchServices(services, endpoints int) []kubeproxy.ServicePort {
	svcs := make([]kubeproxy.ServicePort, services)
	for i := range svcs {
		s := &svcs[i]
		s.Namespace, s.Name, s.PortName, s.Protocol, s.Port = "bench", fmt.Sprintf("svc-%d", i), "http", "TCP", 80
		s.ClusterIP = netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)})
		for j := 0; j < endpoints; j++ {
			s.Endpoints = append(s.Endpoints, kubeproxy.Endpoint{IP: netip.AddrFrom4([4]byte{10, 1 + byte(j), byte(i >> 8), byte(i)}),
				Port: 8080, Ready: true, Serving: true})
		}
	}
	return svcs
}

// BenchKubeProxyNFT is BenchKubeProxy for kube-proxy's nftables mode: a
// one-node lab in nftables mode, the full sync of services x endpoints
// rendered by an NFTProxier and applied with one `nft -f`, then, for each
// way of applying a sync, partialRuns one-endpoint changes, each a partial
// sync as upstream's (changed map elements and the Service's chains, plus
// the cleanup transaction deleting the chain an earlier sync flushed), and
// the floor: the smallest real change, one one-rule chain rewritten. The
// two ways are `nft -f` (what kube-proxy runs, through knftables) and the
// lab's netlink path (netfilter.NFT, nftwire); it returns one result for
// each, in that order, sharing the full sync (always `nft -f`).
func BenchKubeProxyNFT(ctx context.Context, services, endpoints int) ([]*ProxyBenchResult, error) {
	const name = "bench-kp"
	t, err := spec.Generate(name, 1, 0, 1)
	if err != nil {
		return nil, err
	}
	t.KubeProxy.Mode = spec.KubeProxyNFTables
	if _, err := lab.Up(ctx, t, lab.UpOptions{NoApps: true}); err != nil {
		return nil, err
	}
	defer lab.Down(name) //nolint:errcheck
	h, err := ns.Open(spec.NSName(name, t.Nodes[0].Name))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	svcs := benchServices(services, endpoints)
	p, err := kubeproxy.NewNFTProxier(cluster.NFTProxyConfig(t, t.Nodes[0].Name))
	if err != nil {
		return nil, err
	}
	full := &ProxyBenchResult{Backend: NFTablesBackend, Via: ViaNFT, Services: services, Endpoints: endpoints}
	now := time.Now()
	start := time.Now()
	fullSync, err := p.Sync(svcs, now)
	if err != nil {
		return nil, err
	}
	script := fullSync.Tx.String()
	full.Render, full.PayloadBytes, full.Rules = time.Since(start), len(script), strings.Count(script, "add rule ")
	start = time.Now()
	err = netfilter.NFT{Exec: true}.Apply(h, script)
	p.Applied(fullSync, nil, err)
	if err != nil {
		return nil, err
	}
	full.Apply = time.Since(start)
	viaNetlink := *full
	viaNetlink.Via = ViaNetlink
	results := []*ProxyBenchResult{full, &viaNetlink}
	k := 0
	for _, r := range results {
		nft := netfilter.NFT{Exec: r.Via == ViaNFT}
		netlinkBefore := netfilter.NFTStats.Netlink.Load()
		for range partialRuns {
			if endpoints == 0 {
				break
			}
			svcs[(services/2+k*37)%services].Endpoints[0].IP = netip.AddrFrom4([4]byte{10, 9, byte(k >> 8), byte(k)})
			k++
			// Each sync 2 s after the last (in the proxier's clock): the chain
			// the last one flushed is due for deletion, as in a running kube-proxy.
			now = now.Add(2 * time.Second)
			start = time.Now()
			part, err := p.Sync(svcs, now)
			if err != nil {
				return nil, err
			}
			if part.Full {
				return nil, fmt.Errorf("nftables sync %d after one endpoint change was full, not partial", k)
			}
			tx := part.Tx.String()
			cleanup := ""
			if part.Cleanup != nil {
				cleanup = part.Cleanup.String()
			}
			rendered := time.Since(start)
			r.PartialBytes = len(tx) + len(cleanup)
			start = time.Now()
			var cerr error
			if cleanup != "" {
				cerr = nft.Apply(h, cleanup)
			}
			err = nft.Apply(h, tx)
			p.Applied(part, cerr, err)
			if err := errors.Join(cerr, err); err != nil {
				return nil, err
			}
			r.Partial = append(r.Partial, PartialSync{Render: rendered, Apply: time.Since(start)})
		}
		var floors []time.Duration
		for range 5 {
			start = time.Now()
			if err := nft.Apply(h, "flush chain ip kube-proxy mark-for-masquerade\nadd rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000\n"); err != nil {
				return nil, err
			}
			floors = append(floors, time.Since(start))
		}
		r.Floor = median(floors)
		if r.Via == ViaNetlink && netfilter.NFTStats.Netlink.Load() == netlinkBefore {
			return nil, errors.New("the netlink path encoded none of the partial syncs: nothing to compare")
		}
	}
	return results, nil
}

// How a ProxyBenchResult of the nftables mode applied its partial syncs.
const (
	ViaNFT     = "nft -f"
	ViaNetlink = "netlink"
)
