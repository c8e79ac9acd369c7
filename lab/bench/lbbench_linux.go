//go:build linux

package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// Latency is one path's figures over many requests, each on a new connection.
type Latency struct {
	Path          string
	Requests      int
	RPS           float64
	P50, P99      time.Duration
	Failures      int
	RatioToDirect float64
}

// LBBenchResult is the load balancer benchmark of one lab.
type LBBenchResult struct {
	Paths []Latency
	// Unhealthy is the time from a target's health checks starting to fail
	// to the load balancer marking it unhealthy. Whether new flows then
	// avoid it depends on the rest of its AZ (routing failover: a node
	// whose AZ has no healthy target keeps sending to its unhealthy ones).
	Unhealthy time.Duration
}

// BenchLB measures, in one lab run, the same HTTP request sent straight to
// a pod, through the NLB of nlbService and through the ALB of albIngress,
// then how long the NLB takes to stop sending new flows to a target whose
// health checks fail. client is the host that sends.
func BenchLB(ctx context.Context, t *spec.Topology, client string, requests int) (*LBBenchResult, error) {
	name := t.Name + "-bench"
	if _, err := lab.Up(ctx, t, lab.UpOptions{Name: name}); err != nil {
		return nil, err
	}
	defer lab.Down(name) //nolint:errcheck
	s, err := run.OpenSession(name)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	src, err := s.NS(client)
	if err != nil {
		return nil, err
	}
	from, err := walk.EndpointOf(t, client)
	if err != nil {
		return nil, err
	}
	m, err := lb.Build(t)
	if err != nil {
		return nil, err
	}
	r := &LBBenchResult{}
	type target struct {
		name string
		dst  netip.AddrPort
		path string
	}
	var targets []target
	for _, l := range m.LBs {
		n := l.Nodes[0]
		switch {
		case l.Kind == lb.NLB && l.Listeners[0].Group.TargetType == lb.TargetInstance && len(targets) == 0:
			g := l.Listeners[0].Group
			svc := walk.ServiceOf(t, spec.Walk{Service: strings.TrimPrefix(l.Owner, "Service "), Port: l.Listeners[0].Port, Protocol: "tcp"})
			for ip := range svc.Endpoints(t) {
				targets = append(targets, target{"direct to the pod", netip.AddrPortFrom(ip, uint16(g.Targets[0].Port)), "/"})
				break
			}
			targets[0].dst = podAddr(t, svc)
			targets = append(targets, target{"through the NLB (instance, Cluster)", netip.AddrPortFrom(n.IP, uint16(l.Listeners[0].Port)), "/"})
		case l.Kind == lb.ALB:
			rule := l.Rules[0]
			for _, r := range l.Rules {
				if len(r.Group.Targets) > 0 {
					rule = r
					break
				}
			}
			targets = append(targets, target{"direct to the pod", netip.AddrPortFrom(rule.Group.Targets[0].IP, uint16(rule.Group.Targets[0].Port)), "/"},
				target{"through the ALB (ip targets)", netip.AddrPortFrom(n.IP, 80), strings.TrimSuffix(rule.Paths[0], "/*")})
		}
	}
	var direct time.Duration
	for _, tg := range targets {
		lat := measure(src, from.IP, tg.dst, tg.path, requests)
		lat.Path = tg.name
		if strings.HasPrefix(tg.name, "direct") {
			direct = lat.P50
		} else if direct > 0 {
			lat.RatioToDirect = float64(lat.P50) / float64(direct)
		}
		r.Paths = append(r.Paths, lat)
	}
	r.Unhealthy, err = timeToUnhealthy(s, m)
	return r, err
}

// podAddr is the address of the Service's first endpoint on its target port.
func podAddr(t *spec.Topology, svc *walk.Service) netip.AddrPort {
	eps := svc.Endpoints(t)
	ips := make([]netip.Addr, 0, len(eps))
	for ip := range eps {
		ips = append(ips, ip)
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
	return netip.AddrPortFrom(ips[0], uint16(svc.TargetPort(t.Pod(eps[ips[0]]))))
}

func measure(src *ns.NS, from netip.Addr, dst netip.AddrPort, path string, n int) Latency {
	l := Latency{Requests: n}
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, status, err := traffic.HTTPDo(src, from, 0, dst, "", traffic.Timeout, path); err != nil || status != 200 {
			l.Failures++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return l
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	l.P50, l.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	l.RPS = float64(len(lat)) / elapsed.Seconds()
	return l
}

// timeToUnhealthy blocks the health checks of the last instance target of
// the first NLB and times how long until the NLB marks it unhealthy.
func timeToUnhealthy(s *run.Session, m *lb.Model) (time.Duration, error) {
	for _, l := range m.LBs {
		if l.Kind != lb.NLB {
			continue
		}
		g := l.Listeners[0].Group
		tg := g.Targets[len(g.Targets)-1]
		node, err := s.NS(tg.Object)
		if err != nil {
			return 0, err
		}
		rule := []string{"PREROUTING", "-p", "tcp", "--dport", fmt.Sprint(tg.Port), "-j", "DROP"}
		if err := iptablesIn(node, append([]string{"-t", "raw", "-I"}, rule...)); err != nil {
			return 0, err
		}
		defer iptablesIn(node, append([]string{"-t", "raw", "-D"}, rule...)) //nolint:errcheck
		start := time.Now()
		for time.Since(start) < 30*time.Second {
			if h, err := agent.ReadHealth(s.Lab); err == nil && h[g.Name+"/"+tg.String()].State == agent.StateUnhealthy {
				return time.Since(start), nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return 0, fmt.Errorf("%s never marked %s unhealthy in 30 s", l.Name, tg)
	}
	return 0, nil
}

func iptablesIn(n *ns.NS, args []string) error {
	return n.Do(func() error {
		out, err := exec.Command(netfilter.Of(n).Cmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %v in %s: %w: %s", args, n.Name, err, out)
		}
		return nil
	})
}
