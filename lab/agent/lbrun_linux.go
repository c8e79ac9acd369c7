//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// Target health states, as the ELB API names them.
const (
	StateInitial   = "initial"
	StateHealthy   = "healthy"
	StateUnhealthy = "unhealthy"
)

// TargetHealth is one target's health as its load balancer sees it.
type TargetHealth struct {
	LB, Group, Target, Object, AZ string
	State                         string
	Reason                        string    `json:",omitempty"`
	Since                         time.Time `json:",omitempty"`
	ok, fail                      int
}

// ReadHealth loads the recorded target health, keyed "group/target".
func ReadHealth(lab string) (map[string]TargetHealth, error) {
	b, err := os.ReadFile(state.HealthFile(lab))
	if err != nil {
		return nil, err
	}
	var list []TargetHealth
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	out := map[string]TargetHealth{}
	for _, h := range list {
		out[h.Group+"/"+h.Target] = h
	}
	return out, nil
}

// lbRuntime runs a lab's load balancers: health checks from each LB's
// namespace, the NLB's rules re-rendered on every health change, and the ALB
// proxy's choice of targets.
type lbRuntime struct {
	lab    string
	model  *lb.Model
	cancel context.CancelFunc
	mu     sync.Mutex
	health map[string]*TargetHealth
	rr     map[string]int // ALB round robin position per group
	done   chan struct{}
	// apply serialises the effects of health changes: an NLB's rules
	// rendered from a snapshot and restored, then that snapshot published.
	// Each takes the newest state when it runs, so the last one holds it.
	apply sync.Mutex
	// pending counts health changes decided but not yet published.
	pending int
	// published is the health last recorded in lb-health.json, by
	// "group/target" (guarded by mu, changed under apply): what labctl lb
	// and the walks read, and what Route 53 answers from. An NLB's entries
	// are published only after its rules hold them.
	published map[string]TargetHealth
	// dirty marks load balancers whose last change could not be applied;
	// their next probe applies it again (guarded by mu).
	dirty map[string]bool
}

// startLBs starts the health checks of a lab's load balancers. seed is
// the health the previous runtime ended with (on a reload): a target that
// is still there keeps its state and counts, so the NLB rules it left and
// the record stay true; only new targets start initial.
func startLBs(lab string, t *spec.Topology, seed map[string]TargetHealth) (*lbRuntime, error) {
	m, err := lb.Build(t)
	if err != nil {
		return nil, err
	}
	var handles []*ns.NS
	for _, l := range m.LBs {
		h, err := ns.Open(spec.NSName(lab, l.Name))
		if err != nil {
			for _, h := range handles {
				h.Close()
			}
			return nil, err
		}
		handles = append(handles, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &lbRuntime{lab: lab, model: m, cancel: cancel, health: map[string]*TargetHealth{}, rr: map[string]int{},
		done: make(chan struct{}), dirty: map[string]bool{}}
	// Recorded before any probe can change it.
	for _, l := range m.LBs {
		for _, g := range l.Groups() {
			for _, tg := range g.Targets {
				k := g.Name + "/" + tg.String()
				th := &TargetHealth{LB: l.Name, Group: g.Name, Target: tg.String(), Object: tg.Object, AZ: tg.AZ,
					State: StateInitial, Since: time.Now()}
				if old, ok := seed[k]; ok {
					th.State, th.Reason, th.Since, th.ok, th.fail = old.State, old.Reason, old.Since, old.ok, old.fail
				}
				r.health[k] = th
			}
		}
	}
	r.publish(r.snapshot(nil))
	var wg sync.WaitGroup
	for i, l := range m.LBs {
		h := handles[i]
		for _, g := range l.Groups() {
			for _, tg := range g.Targets {
				th := r.health[g.Name+"/"+tg.String()]
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.probeLoop(ctx, h, l, g, tg, th)
				}()
			}
		}
	}
	// The namespaces' handles close only once no probe can use them.
	go func() {
		wg.Wait()
		for _, h := range handles {
			h.Close()
		}
		close(r.done)
	}()
	return r, nil
}

// settleLimit bounds how long a start or reload waits for health to form.
const settleLimit = 10 * time.Second

// settle waits until no target is still in its initial state, so a lab is
// ready with its load balancers' view of health already formed.
func (r *lbRuntime) settle(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		busy := r.pending
		for _, h := range r.health {
			if h.State == StateInitial {
				busy++
			}
		}
		r.mu.Unlock()
		if busy == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *lbRuntime) stop() {
	r.cancel()
	<-r.done
}

// source is the LB node a target is probed and reached from: the node in
// the target's AZ, else the first.
func source(l *lb.LoadBalancer, az string) lb.Node {
	for _, n := range l.Nodes {
		if n.AZ == az {
			return n
		}
	}
	return l.Nodes[0]
}

// probeLoop health-checks one target at the lab's scaled interval and
// applies the thresholds: healthy after Healthy successes in a row,
// unhealthy after Unhealthy failures in a row.
func (r *lbRuntime) probeLoop(ctx context.Context, h *ns.NS, l *lb.LoadBalancer, g *lb.TargetGroup, tg lb.Target, th *TargetHealth) {
	hc := g.HealthCheck
	interval, timeout := hc.Scaled()
	src := source(l, tg.AZ).IP
	for {
		err := probe(h, src, tg, hc, timeout)
		r.mu.Lock()
		changed := false
		if err == nil {
			th.ok, th.fail = th.ok+1, 0
			if th.State != StateHealthy && th.ok >= hc.Healthy {
				th.State, th.Reason, th.Since, changed = StateHealthy, "", time.Now(), true
				r.pending++
			}
		} else {
			th.fail, th.ok = th.fail+1, 0
			th.Reason = err.Error()
			if th.State != StateUnhealthy && th.fail >= hc.Unhealthy {
				th.State, th.Since, changed = StateUnhealthy, time.Now(), true
				r.pending++
			}
		}
		if !changed && r.dirty[l.Name] {
			// The last change of this LB did not apply: try again.
			delete(r.dirty, l.Name)
			changed = true
			r.pending++
		}
		r.mu.Unlock()
		if changed {
			r.changed(l)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// probe is one health check from the LB node's address: a TCP connect, or
// an HTTP GET whose status must match.
func probe(h *ns.NS, src netip.Addr, tg lb.Target, hc lb.HealthCheck, timeout time.Duration) error {
	port := tg.Port
	if hc.Port != 0 {
		port = hc.Port
	}
	addr := netip.AddrPortFrom(tg.IP, uint16(port)).String()
	var c net.Conn
	err := h.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		var err error
		c, err = d.Dial("tcp4", addr)
		return err
	})
	if err != nil {
		return fmt.Errorf("connect %s: %v", addr, shortErr(err))
	}
	defer c.Close()
	if hc.Protocol != "HTTP" {
		return nil
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\n\r\n", hc.Path, addr)
	var proto string
	var code int
	if _, err := fmt.Fscan(c, &proto, &code); err != nil {
		return fmt.Errorf("GET %s%s: %v", addr, hc.Path, shortErr(err))
	}
	if !matches(hc.Matcher, code) {
		return fmt.Errorf("GET %s%s: HTTP %d (needs %s)", addr, hc.Path, code, hc.Matcher)
	}
	return nil
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// matches checks an HTTP status against a matcher such as "200" or "200-399".
func matches(matcher string, code int) bool {
	for _, part := range strings.Split(matcher, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		l, _ := strconv.Atoi(lo)
		h := l
		if isRange {
			h, _ = strconv.Atoi(hi)
		}
		if code >= l && code <= h {
			return true
		}
	}
	return false
}

func (r *lbRuntime) healthy(g *lb.TargetGroup) func(lb.Target) bool {
	return func(t lb.Target) bool {
		h := r.health[g.Name+"/"+t.String()]
		return h != nil && h.State == StateHealthy
	}
}

// inDNS are the nodes of l that its DNS name answers, by the health last
// published.
func (r *lbRuntime) inDNS(l *lb.LoadBalancer) []lb.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	in, _ := l.InDNS(func(g *lb.TargetGroup, t lb.Target) bool {
		return r.published[g.Name+"/"+t.String()].State == StateHealthy
	})
	return in
}

// changed applies a health change of one load balancer: its targets'
// health is snapshotted; an NLB's rules are rendered from the snapshot and
// restored in its namespace (new flows follow the healthy targets; old
// flows to a target now unhealthy are reset); then the snapshot is
// published, so the record never runs ahead of the rules.
func (r *lbRuntime) changed(l *lb.LoadBalancer) {
	r.apply.Lock()
	defer r.apply.Unlock()
	snap := r.snapshot(l)
	if l.Kind == lb.NLB {
		state := func(g *lb.TargetGroup, t lb.Target) string { return snap[g.Name+"/"+t.String()].State }
		payload := lb.NLBRules(l, lb.Health{
			Healthy:   func(g *lb.TargetGroup, t lb.Target) bool { return state(g, t) == StateHealthy },
			Unhealthy: func(g *lb.TargetGroup, t lb.Target) bool { return state(g, t) == StateUnhealthy },
		})
		if err := applyNLB(r.lab, l.Name, payload); err != nil {
			// Not published: the record would run ahead of the rules. The
			// next probe of this LB applies the newest state again.
			fmt.Fprintln(os.Stderr, "lb:", err)
			r.mu.Lock()
			r.dirty[l.Name] = true
			r.pending--
			r.mu.Unlock()
			return
		}
	}
	r.publish(snap)
	r.mu.Lock()
	r.pending--
	r.mu.Unlock()
}

// applyNLB restores an NLB's rules in its namespace (a variable so a test
// can watch the order of restore and publish).
var applyNLB = func(lab, name, payload string) error {
	h, err := ns.Open(spec.NSName(lab, name))
	if err != nil {
		return err
	}
	defer h.Close()
	return netfilter.Of(h).Restore(h, payload, false)
}

// snapshot copies the health of l's targets (of every target for nil).
func (r *lbRuntime) snapshot(l *lb.LoadBalancer) map[string]TargetHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := map[string]TargetHealth{}
	for k, h := range r.health {
		if l == nil || h.LB == l.Name {
			snap[k] = *h
		}
	}
	return snap
}

// recorded is a copy of the health last published: for an NLB, what its
// rules hold.
func (r *lbRuntime) recorded() map[string]TargetHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.published)
}

// publish merges a snapshot into the published health and records all of
// it in lb-health.json for labctl lb and the walks. Callers hold apply (or,
// in startLBs, run before any probe), so records are written one at a time
// and in order; the rename makes each appear whole.
func (r *lbRuntime) publish(snap map[string]TargetHealth) {
	r.mu.Lock()
	if r.published == nil {
		r.published = map[string]TargetHealth{}
	}
	for k, h := range snap {
		r.published[k] = h
	}
	list := make([]TargetHealth, 0, len(r.published))
	for _, h := range r.published {
		list = append(list, h)
	}
	r.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Group+list[i].Target < list[j].Group+list[j].Target })
	b, _ := json.MarshalIndent(list, "", "  ")
	f, err := os.CreateTemp(state.Dir(r.lab), "lb-health-*.tmp")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lb:", err)
		return
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644) // readable as the old file was, for labctl lb
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), state.HealthFile(r.lab))
	}
	if err != nil {
		os.Remove(f.Name())
		fmt.Fprintln(os.Stderr, "lb:", err)
	}
}

// pick is an ALB node's choice of target for a group: round robin over the
// targets it may use (its AZ unless cross-zone, healthy, failing open).
func (r *lbRuntime) pick(g *lb.TargetGroup, az string) (lb.Target, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := g.Eligible(az, r.healthy(g))
	if len(ts) == 0 {
		return lb.Target{}, false
	}
	i := r.rr[g.Name+"/"+az] % len(ts)
	r.rr[g.Name+"/"+az]++
	return ts[i], true
}
