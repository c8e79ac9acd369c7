//go:build linux

// Package bench times labctl against its targets: up and down of many pods
// against an `ip -batch` baseline, kube-proxy's syncs on one node, and
// requests through a load balancer.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// BenchResult is one benchmark run: labctl's up and down against a plain
// iproute2 baseline that creates the same namespaces and veths.
type BenchResult struct {
	Nodes, Pods, Namespaces, Veths int
	Up, Down                       time.Duration
	BaselineUp, BaselineDown       time.Duration
}

// Bench generates a topology of nodes x podsPerNode, times Up and Down, then
// times `ip -batch` creating and deleting the same namespaces and veths.
// Both run under lab names with state, so a crash leaves nothing down can't remove.
func Bench(ctx context.Context, nodes, podsPerNode, azs int, apps bool) (*BenchResult, error) {
	t, err := spec.Generate("bench", nodes, podsPerNode, azs)
	if err != nil {
		return nil, err
	}
	p := plan.Build(t, "bench")
	r := &BenchResult{Nodes: nodes, Pods: len(t.Pods), Namespaces: len(p.Namespaces), Veths: len(p.Veths)}
	start := time.Now()
	if _, err := lab.Up(ctx, t, lab.UpOptions{NoApps: !apps}); err != nil {
		return nil, err
	}
	r.Up = time.Since(start)
	start = time.Now()
	if _, err := lab.Down("bench"); err != nil {
		return nil, err
	}
	r.Down = time.Since(start)

	r.BaselineUp, r.BaselineDown, err = baseline(ctx, plan.Build(t, "bench-baseline"))
	return r, err
}

// baseline is the same namespaces and veths through iproute2's batch mode:
// one ip process, no per-namespace forks.
func baseline(ctx context.Context, p *plan.Plan) (time.Duration, time.Duration, error) {
	if err := lab.Preflight(p.Lab, "ip"); err != nil {
		return 0, 0, err
	}
	st := &state.State{Lab: p.Lab, Topology: "(iproute2 baseline)", Created: time.Now().UTC(), Namespaces: p.NSNames()}
	if err := state.Create(p.Lab); err != nil {
		return 0, 0, err
	}
	if err := st.Write(); err != nil {
		return 0, 0, err
	}
	defer lab.Down(p.Lab) //nolint:errcheck // a second pass after the timed one; nothing should be left
	var add, del bytes.Buffer
	for _, n := range p.Namespaces {
		fmt.Fprintf(&add, "netns add %s\n", n.Name)
		fmt.Fprintf(&del, "netns del %s\n", n.Name)
	}
	for _, v := range p.Veths {
		fmt.Fprintf(&add, "link add %s netns %s address %s mtu %d type veth peer name %s netns %s address %s\n",
			v.A.Name, v.A.NS, v.A.MAC, v.A.MTU, v.B.Name, v.B.NS, v.B.MAC)
	}
	timed := func(batch *bytes.Buffer) (time.Duration, error) {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "ip", "-batch", "-")
		cmd.Stdin = batch
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("ip -batch: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return time.Since(start), nil
	}
	up, err := timed(&add)
	if err != nil {
		return 0, 0, err
	}
	down, err := timed(&del)
	return up, down, err
}

// ProxyBenchResult is kube-proxy's cost on one node: a full render and
// restore of many Services, then re-applies after one endpoint changed.
type ProxyBenchResult struct {
	Backend string
	// Via is how the nftables mode's partial syncs were applied (ViaNFT or
	// ViaNetlink); "" for iptables.
	Via                        string
	Services, Endpoints, Rules int
	PayloadBytes               int
	Render, Apply              time.Duration
	// Partial are the one-endpoint syncs (render + restore each), one per
	// changed Service; PartialBytes is the payload of the last one.
	Partial      []PartialSync
	PartialBytes int
	// Floor is the median restore of the smallest real change, one
	// one-rule chain rewritten: the backend's fixed cost of any sync at
	// this size (legacy fetches and replaces the whole table).
	Floor time.Duration
}

// PartialSync is one timed one-endpoint sync.
type PartialSync struct{ Render, Apply time.Duration }

// Total is render plus restore.
func (p PartialSync) Total() time.Duration { return p.Render + p.Apply }

// PartialStats are the minimum, median and maximum of the partial syncs'
// totals, and the median render and restore.
func (r *ProxyBenchResult) PartialStats() (lo, med, hi, render, apply time.Duration) {
	var totals, renders, applies []time.Duration
	for _, p := range r.Partial {
		totals, renders, applies = append(totals, p.Total()), append(renders, p.Render), append(applies, p.Apply)
	}
	return slices.Min(totals), median(totals), slices.Max(totals), median(renders), median(applies)
}

// BenchKubeProxy renders services x endpoints on a one-node lab and applies
// them with one iptables-restore, then changes one endpoint of a different
// Service partialRuns times and re-applies kube-proxy's partial sync each
// time, then measures the smallest real change (one one-rule chain).
func BenchKubeProxy(ctx context.Context, services, endpoints int, backend string) (*ProxyBenchResult, error) {
	t, err := spec.Generate("bench-kp", 1, 0, 1)
	if err != nil {
		return nil, err
	}
	t.Iptables = backend
	if _, err := lab.Up(ctx, t, lab.UpOptions{NoApps: true}); err != nil {
		return nil, err
	}
	defer lab.Down("bench-kp") //nolint:errcheck
	h, err := ns.Open(spec.NSName("bench-kp", t.Nodes[0].Name))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nf := netfilter.For(backend)
	svcs := benchServices(services, endpoints)
	p, err := kubeproxy.NewProxier(cluster.ProxyConfig(t, t.Nodes[0].Name))
	if err != nil {
		return nil, err
	}
	r := &ProxyBenchResult{Backend: backend, Services: services, Endpoints: endpoints}
	start := time.Now()
	full, err := p.Sync(svcs)
	if err != nil {
		return nil, err
	}
	r.Render, r.PayloadBytes, r.Rules = time.Since(start), len(full.Payload), full.NATRules
	start = time.Now()
	err = nf.Restore(h, string(full.Payload), true)
	p.Applied(full, err)
	if err != nil {
		return nil, err
	}
	r.Apply = time.Since(start)

	// One endpoint change at a time, each in another Service: the median
	// is the figure, so one slow run of a 2-core machine does not decide it.
	for k := 0; k < partialRuns && endpoints > 0; k++ {
		svcs[(services/2+k*37)%services].Endpoints[0].IP = netip.AddrFrom4([4]byte{10, 9, byte(k >> 8), byte(k)})
		start = time.Now()
		part, err := p.Sync(svcs)
		if err != nil {
			return nil, err
		}
		rendered := time.Since(start)
		if part.Full {
			return nil, fmt.Errorf("sync %d after one endpoint change was full, not partial", k+1)
		}
		r.PartialBytes = len(part.Payload)
		start = time.Now()
		err = nf.Restore(h, string(part.Payload), true)
		p.Applied(part, err)
		if err != nil {
			return nil, err
		}
		r.Partial = append(r.Partial, PartialSync{Render: rendered, Apply: time.Since(start)})
	}
	// The smallest real change: KUBE-MARK-MASQ rewritten with its own rule.
	// (A restore that changes nothing would not even commit with legacy.)
	var mark string
	for _, l := range strings.Split(string(full.Payload), "\n") {
		if strings.HasPrefix(l, "-A KUBE-MARK-MASQ ") {
			mark = l
		}
	}
	if mark == "" {
		return nil, fmt.Errorf("no KUBE-MARK-MASQ rule in the payload")
	}
	var floors []time.Duration
	for range 5 {
		start = time.Now()
		if err := nf.Restore(h, "*nat\n:KUBE-MARK-MASQ - [0:0]\n"+mark+"\nCOMMIT\n", true); err != nil {
			return nil, err
		}
		floors = append(floors, time.Since(start))
	}
	r.Floor = median(floors)
	return r, nil
}

// partialRuns is how many one-endpoint syncs a benchmark times.
const partialRuns = 11

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
