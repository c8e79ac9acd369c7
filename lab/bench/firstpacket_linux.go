//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/capture"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// The kube-proxy setups a first-packet benchmark compares.
const (
	FirstPacketIptablesNFT    = "iptables, nft"
	FirstPacketIptablesLegacy = "iptables, legacy"
	FirstPacketNFTables       = "nftables"
)

// FirstPacketOptions tune BenchFirstPacket.
type FirstPacketOptions struct {
	// Counts are the Service counts, ascending.
	Counts []int
	// Connections are the timed new connections per Service dialled;
	// Warmup more go first, untimed.
	Connections, Warmup int
	// Modes are FirstPacket* names, run in this order.
	Modes []string
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

// FirstPacketTarget is one Service dialled at one count in one mode.
type FirstPacketTarget struct {
	Rule ServiceRule
	// Setup are SYN to SYN-ACK times from the client's capture; Connect
	// the same connections' connect() calls as the client timed them.
	Setup, Connect []time.Duration
	// Unanswered SYNs (no SYN-ACK from the ClusterIP in the capture),
	// Failed connect() calls, and Unstamped handshakes whose frames were
	// stamped outside their connect() (not counted in Setup).
	Unanswered, Failed, Unstamped int
}

// FirstPacketPoint is one mode at one Service count.
type FirstPacketPoint struct {
	Mode     string
	Services int
	// Rules is the length of nat KUBE-SERVICES at this count.
	Rules        int
	Last, Middle FirstPacketTarget
	// Sync is the time to render and apply this count's rules.
	Sync time.Duration
}

// FirstPacketResult is every mode at every count, with the machine's load.
type FirstPacketResult struct {
	Points                []FirstPacketPoint
	LoadBefore, LoadAfter string
	CPUs                  int
	Kernel                string
}

// firstPacketLab is the lab name; one mode's lab is up at a time.
const firstPacketLab = "bench-fp"

// endpointPort is where the three pods listen.
const endpointPort = 8080

// BenchFirstPacket measures the first packet's cost through kube-proxy's
// rules: for each mode, a one-node lab with a client pod and three endpoint
// pods listening on 8080; for each count, that many ClusterIP Services all
// selecting the three pods, synced as kube-proxy syncs them; then
// Connections new connections (each from a new source port, so new to
// conntrack and walking the nat table) to the Service last in iptables
// mode's KUBE-SERVICES and to the one in its middle, timed SYN to SYN-ACK
// at the client's eth0. The Services dialled are read from the rendered
// iptables rules and are the same in every mode.
func BenchFirstPacket(ctx context.Context, o FirstPacketOptions) (*FirstPacketResult, error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(o.Counts) == 0 || o.Connections < 1 || o.Warmup < 0 {
		return nil, fmt.Errorf("first packet: need Service counts and at least one connection")
	}
	maxN := 0
	for i, n := range o.Counts {
		if i > 0 && n <= o.Counts[i-1] {
			return nil, fmt.Errorf("first packet: Service counts %v must ascend", o.Counts)
		}
		maxN = n
	}
	t, err := spec.Generate(firstPacketLab, 1, 4, 1)
	if err != nil {
		return nil, err
	}
	node, clientPod := t.Nodes[0].Name, t.Pods[0]
	var eps []netip.Addr
	for _, p := range t.Pods[1:] {
		eps = append(eps, p.IP)
	}
	all, err := FirstPacketServices(maxN, eps, endpointPort)
	if err != nil {
		return nil, err
	}
	// Which Services to dial, from iptables mode's rendered rules at each
	// count (kube-proxy orders KUBE-SERVICES by name, not by creation).
	targets := map[int][2]ServiceRule{}
	totals := map[int]int{}
	for _, n := range o.Counts {
		p, err := kubeproxy.NewProxier(cluster.ProxyConfig(t, node))
		if err != nil {
			return nil, err
		}
		r, err := p.Sync(all[:n])
		if err != nil {
			return nil, err
		}
		rules, total, err := KubeServicesOrder(r.Payload)
		if err != nil {
			return nil, fmt.Errorf("%d Services: %w", n, err)
		}
		last, middle := LastAndMiddle(rules)
		targets[n], totals[n] = [2]ServiceRule{last, middle}, total
	}

	res := &FirstPacketResult{LoadBefore: loadAvg(), CPUs: cpus(), Kernel: kernelRelease()}
	for _, mode := range o.Modes {
		pts, err := firstPacketMode(ctx, t, mode, all, o, targets, totals, clientPod, logf)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mode, err)
		}
		res.Points = append(res.Points, pts...)
	}
	res.LoadAfter = loadAvg()
	return res, nil
}

// firstPacketMode is one mode's lab, synced to each count and dialled.
func firstPacketMode(ctx context.Context, base *spec.Topology, mode string, all []kubeproxy.ServicePort, o FirstPacketOptions,
	targets map[int][2]ServiceRule, totals map[int]int, clientPod spec.Pod, logf func(string, ...any)) (pts []FirstPacketPoint, err error) {
	t := *base
	switch mode {
	case FirstPacketIptablesNFT:
		t.Iptables, t.KubeProxy.Mode = spec.IptablesNFT, spec.KubeProxyIPTables
	case FirstPacketIptablesLegacy:
		t.Iptables, t.KubeProxy.Mode = spec.IptablesLegacy, spec.KubeProxyIPTables
	case FirstPacketNFTables:
		t.KubeProxy.Mode = spec.KubeProxyNFTables
	default:
		return nil, fmt.Errorf("unknown mode %q; use %q, %q or %q", mode, FirstPacketIptablesNFT, FirstPacketIptablesLegacy, FirstPacketNFTables)
	}
	if _, err := lab.Up(ctx, &t, lab.UpOptions{NoApps: true}); err != nil {
		return nil, err
	}
	defer func() {
		if _, derr := lab.Down(firstPacketLab); derr != nil && err == nil {
			err = fmt.Errorf("down %s: %w", firstPacketLab, derr)
		}
	}()
	open := func(object string) (*ns.NS, error) { return ns.Open(spec.NSName(firstPacketLab, object)) }
	nodeNS, err := open(t.Nodes[0].Name)
	if err != nil {
		return nil, err
	}
	defer nodeNS.Close()
	clientNS, err := open(clientPod.Name)
	if err != nil {
		return nil, err
	}
	defer clientNS.Close()
	for _, p := range t.Pods[1:] {
		stop, err := listen(open, p.Name)
		if err != nil {
			return nil, err
		}
		defer stop()
	}
	sync, err := newSyncer(&t, mode, nodeNS)
	if err != nil {
		return nil, err
	}
	sock, err := capture.Open(clientNS, walk.Point{Object: clientPod.Name, Iface: "eth0"})
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	d := &dialer{ns: clientNS, client: clientPod, sock: sock, port: firstSourcePort}
	for i, n := range o.Counts {
		start := time.Now()
		payload, err := sync(all[:n])
		if err != nil {
			return nil, fmt.Errorf("%d Services: sync: %w", n, err)
		}
		pt := FirstPacketPoint{Mode: mode, Services: n, Rules: totals[n], Sync: time.Since(start)}
		if payload != nil { // iptables mode: what was applied orders the chain as predicted
			rules, total, err := KubeServicesOrder(payload)
			if err != nil {
				return nil, fmt.Errorf("%d Services: %w", n, err)
			}
			if last, middle := LastAndMiddle(rules); last != targets[n][0] || middle != targets[n][1] || total != totals[n] {
				return nil, fmt.Errorf("%d Services: the applied KUBE-SERVICES has %s last and %s in the middle, not %s and %s",
					n, last.Name, middle.Name, targets[n][0].Name, targets[n][1].Name)
			}
		}
		// Let the kernel finish what a sync (or the last mode's down)
		// left behind, such as freeing the replaced rules, before timing.
		time.Sleep(settle)
		if i == 0 {
			if err := d.awaitStamps(targets[n][0]); err != nil {
				return nil, err
			}
		}
		tgs, err := d.dialMany([]ServiceRule{targets[n][0], targets[n][1]}, o.Warmup, o.Connections)
		if err != nil {
			return nil, fmt.Errorf("%d Services: %w", n, err)
		}
		pt.Last, pt.Middle = tgs[0], tgs[1]
		logf("%s, %d Services: synced in %v; last %s p50 %v, middle %s p50 %v", mode, n, pt.Sync.Round(time.Millisecond),
			pt.Last.Rule.Name, Percentile(pt.Last.Setup, 50), pt.Middle.Rule.Name, Percentile(pt.Middle.Setup, 50))
		pts = append(pts, pt)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return pts, nil
}

// newSyncer returns what brings the node's rules to a list of Services the
// way kube-proxy would in mode: one proxier, each sync partial after the
// first. In iptables mode it returns the payload it applied.
func newSyncer(t *spec.Topology, mode string, h *ns.NS) (func([]kubeproxy.ServicePort) ([]byte, error), error) {
	node := t.Nodes[0].Name
	if mode == FirstPacketNFTables {
		p, err := kubeproxy.NewNFTProxier(cluster.NFTProxyConfig(t, node))
		if err != nil {
			return nil, err
		}
		var nft netfilter.NFT
		now := time.Now()
		return func(svcs []kubeproxy.ServicePort) ([]byte, error) {
			now = now.Add(2 * time.Second) // the chains an earlier sync left are due for cleanup
			r, err := p.Sync(svcs, now)
			if err != nil {
				return nil, err
			}
			var cerr error
			if r.Cleanup != nil {
				cerr = nft.Apply(h, r.Cleanup.String())
			}
			err = nft.Apply(h, r.Tx.String())
			p.Applied(r, cerr, err)
			return nil, errors.Join(cerr, err)
		}, nil
	}
	p, err := kubeproxy.NewProxier(cluster.ProxyConfig(t, node))
	if err != nil {
		return nil, err
	}
	nf := netfilter.For(t.Iptables)
	return func(svcs []kubeproxy.ServicePort) ([]byte, error) {
		r, err := p.Sync(svcs)
		if err != nil {
			return nil, err
		}
		err = nf.Restore(h, string(r.Payload), true)
		p.Applied(r, err)
		return r.Payload, err
	}, nil
}

// listen starts a TCP listener on :8080 in a pod that accepts and closes
// every connection, so the accept queue never fills; stop ends it.
func listen(open func(string) (*ns.NS, error), pod string) (stop func(), err error) {
	h, err := open(pod)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var l net.Listener
	err = h.Do(func() error {
		var err error
		l, err = net.Listen("tcp4", fmt.Sprintf(":%d", endpointPort))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on :%d in %s: %w", endpointPort, pod, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() { l.Close(); <-done }, nil
}

// Source ports the client binds, one per connection, so each is new to
// conntrack; they wrap within [firstSourcePort, lastSourcePort).
const (
	firstSourcePort = 20000
	lastSourcePort  = 60000
	// drainEvery connections the capture is read, well before its
	// buffer (4 MiB) could fill with their four frames each.
	drainEvery = 100
	// dialTimeout bounds one connection's setup; the SYN-ACK comes in
	// microseconds, or not at all when the rules are wrong.
	dialTimeout = 2 * time.Second
	// settle is the pause between a sync and its timing.
	settle = 2 * time.Second
)

// dialer dials from the client pod with a capture of its eth0 that stays
// open for the whole mode: every close and open of a timestamping socket
// may switch the kernel's packet timestamps off and on again, later.
type dialer struct {
	ns     *ns.NS
	client spec.Pod
	sock   *capture.Socket
	port   int
}

// nextPort is the next source port, wrapping.
func (d *dialer) nextPort() int {
	p := d.port
	d.port++
	if d.port >= lastSourcePort {
		d.port = firstSourcePort
	}
	return p
}

// dialMany opens warmup and then n new connections from the client pod to
// each rule's ClusterIP, each from the next source port, each reset at once
// (SO_LINGER 0: no TIME_WAIT), and pairs the timed ones' SYN and SYN-ACK in
// the capture. The rules take turns in blocks of drainEvery connections,
// so a change in the machine's load falls on each of them alike. A pair
// stamped outside its connect() call is not counted.
func (d *dialer) dialMany(rules []ServiceRule, warmup, n int) ([]FirstPacketTarget, error) {
	tgs := make([]FirstPacketTarget, len(rules))
	firstErr := make([]error, len(rules))
	var frames []Frame
	windows := make(map[uint16]Window, n*len(rules))
	drain := func(keep bool) error {
		fs, err := d.sock.Drain()
		if err != nil {
			return err
		}
		for _, f := range fs {
			if keep {
				frames = append(frames, Frame{Time: f.Time, Out: f.Dir == walk.Out, Data: f.Data[:min(len(f.Data), 128)]})
			}
		}
		return nil
	}
	err := d.ns.Do(func() error {
		for i, rule := range rules {
			tgs[i].Rule = rule
			for range warmup {
				dial(d.client.IP, d.nextPort(), rule.Dst) //nolint:errcheck // untimed
			}
		}
		if err := drain(false); err != nil {
			return err
		}
		for done := 0; done < n; done += drainEvery {
			for i, rule := range rules {
				for range min(drainEvery, n-done) {
					port := d.nextPort()
					start := time.Now()
					took, err := dial(d.client.IP, port, rule.Dst)
					windows[uint16(port)] = Window{Start: start, End: time.Now()}
					if err != nil {
						tgs[i].Failed++
						if firstErr[i] == nil {
							firstErr[i] = err
						}
						continue
					}
					tgs[i].Connect = append(tgs[i].Connect, took)
				}
				if err := drain(true); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range tgs {
		tg := &tgs[i]
		setups, unanswered := Setups(frames, d.client.IP, tg.Rule.Dst)
		tg.Setup, tg.Unstamped = InWindows(setups, windows)
		tg.Unanswered = len(unanswered)
		if tg.Failed > n/10 || len(tg.Setup) < n/2 {
			return nil, fmt.Errorf("%s: %d of %d connections failed (first: %v), %d SYNs unanswered, %d handshakes stamped outside connect(): too few to time",
				tg.Rule.Name, tg.Failed, n, firstErr[i], tg.Unanswered, tg.Unstamped)
		}
	}
	return tgs, nil
}

// awaitStamps dials rule until a round of connections is all stamped
// inside connect(): the kernel enables packet timestamps from a workqueue
// after the capture socket asked for them.
func (d *dialer) awaitStamps(rule ServiceRule) error {
	const round = 20
	deadline := time.Now().Add(10 * time.Second)
	for {
		var tg FirstPacketTarget
		tgs, err := d.dialMany([]ServiceRule{rule}, 0, round)
		if err == nil {
			if tg = tgs[0]; tg.Unstamped == 0 && len(tg.Setup) == round {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the capture of %s/eth0 still stamps frames outside connect() after 10 s (last round: %d of %d; %v)",
				d.client.Name, tg.Unstamped, round, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dial opens one TCP connection from src:port to dst and resets it, and
// returns how long connect() took. Call it inside the client's namespace.
func dial(src netip.Addr, port int, dst netip.AddrPort) (time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return 0, err
	}
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return 0, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4(), Port: port}); err != nil {
		return 0, fmt.Errorf("bind %s:%d: %w", src, port, err)
	}
	start := time.Now()
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return 0, fmt.Errorf("connect %s:%d -> %s: %w", src, port, dst, err)
	}
	if err != nil {
		deadline := start.Add(dialTimeout)
		for {
			left := time.Until(deadline)
			if left <= 0 {
				return 0, fmt.Errorf("connect %s:%d -> %s: no answer in %v", src, port, dst, dialTimeout)
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			k, err := unix.Poll(pfd, int(left.Milliseconds())+1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return 0, err
			}
			if k > 0 {
				break
			}
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return 0, err
		}
		if soErr != 0 {
			return 0, fmt.Errorf("connect %s:%d -> %s: %w", src, port, dst, unix.Errno(soErr))
		}
	}
	return time.Since(start), nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpus() int {
	var s unix.CPUSet
	if err := unix.SchedGetaffinity(0, &s); err != nil {
		return 0
	}
	return s.Count()
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "?"
	}
	return unix.ByteSliceToString(u.Release[:])
}
