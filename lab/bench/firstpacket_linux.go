//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
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
	// Modes are FirstPacket* names; every mode's lab is up at once.
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
	// Rounds are the Setup times by round: Rounds[r] were dialled in
	// round r, so every cell's Rounds[r] share the machine's load.
	Rounds [][]time.Duration
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
	// Rounds of Block connections per Service each; RoundLoad is the load
	// average as each round began, RoundTook how long each round took.
	Rounds, Block int
	RoundLoad     []string
	RoundTook     []time.Duration
	// MemBefore and MemUp are MemAvailable (bytes) before the first lab
	// and with every lab up and synced.
	MemBefore, MemUp int64
}

// firstPacketLab is the labs' name prefix; each mode's lab adds a suffix.
const firstPacketLab = "bench-fp"

// endpointPort is where the three pods listen.
const endpointPort = 8080

// firstPacketLabName is mode's lab.
func firstPacketLabName(mode string) string {
	switch mode {
	case FirstPacketIptablesNFT:
		return firstPacketLab + "-ipt-nft"
	case FirstPacketIptablesLegacy:
		return firstPacketLab + "-ipt-legacy"
	}
	return firstPacketLab + "-nftables"
}

// BenchFirstPacket measures the first packet's cost through kube-proxy's
// rules. Every mode gets a lab with one node per count, each node with a
// client pod and three endpoint pods listening on 8080, and that many
// ClusterIP Services all selecting the node's three pods, synced as
// kube-proxy syncs them at start (one full sync). Every (mode, count) is
// up at once; then new connections (each from a new source port, so new to
// conntrack and walking the nat table) to the Service last in iptables
// mode's KUBE-SERVICES and to the one in its middle, timed SYN to SYN-ACK
// at the client's eth0, are dialled in rounds: each round dials every
// mode's every count's two Services a block of connections, in the order
// RoundOrder gives, so a change in the machine's load falls on all of
// them alike instead of on whichever count was measured then. The Services
// dialled are read from the rendered iptables rules and are the same in
// every mode. The labs are down when it returns, also when ctx is
// cancelled (Ctrl-C) or a step fails.
func BenchFirstPacket(ctx context.Context, o FirstPacketOptions) (res *FirstPacketResult, err error) {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(o.Counts) == 0 || o.Connections < 1 || o.Warmup < 0 || len(o.Modes) == 0 {
		return nil, fmt.Errorf("first packet: need Service counts, a mode and at least one connection")
	}
	for i, n := range o.Counts {
		if i > 0 && n <= o.Counts[i-1] {
			return nil, fmt.Errorf("first packet: Service counts %v must ascend", o.Counts)
		}
		if _, err := FirstPacketServices(n, nil, endpointPort); err != nil {
			return nil, err
		}
	}
	t, err := spec.Generate(firstPacketLab, len(o.Counts), 4, 1)
	if err != nil {
		return nil, err
	}
	// Which Services to dial, from iptables mode's rendered rules at each
	// count (kube-proxy orders KUBE-SERVICES by name, not by creation).
	targets := map[int][2]ServiceRule{}
	totals := map[int]int{}
	for k, n := range o.Counts {
		node := firstPacketNode(t, k)
		svcs, err := FirstPacketServices(n, node.endpoints, endpointPort)
		if err != nil {
			return nil, err
		}
		p, err := kubeproxy.NewProxier(cluster.ProxyConfig(t, node.name))
		if err != nil {
			return nil, err
		}
		r, err := p.Sync(svcs)
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

	res = &FirstPacketResult{LoadBefore: loadAvg(), CPUs: cpus(), Kernel: kernelRelease(), MemBefore: memAvailable()}
	var labs []*fpLab
	defer func() {
		for i := len(labs) - 1; i >= 0; i-- {
			labs[i].close()
			if _, derr := lab.Down(labs[i].name); derr != nil && err == nil {
				err = fmt.Errorf("down %s: %w", labs[i].name, derr)
			}
		}
	}()
	// Build everything first (an iptables-nft restore of 10,000 Services
	// took 101 s on a loaded machine), then time.
	for _, mode := range o.Modes {
		l := &fpLab{mode: mode, name: firstPacketLabName(mode)}
		if err := l.up(ctx, t, o.Counts, targets, totals, &labs, logf); err != nil {
			return nil, fmt.Errorf("%s (lab %s): %w", mode, l.name, err)
		}
	}
	res.MemUp = memAvailable()
	// Let the kernel finish what the syncs left behind, such as freeing
	// replaced rules, before timing.
	time.Sleep(settle)
	var cells []*fpCell
	for _, l := range labs {
		for _, nd := range l.nodes {
			if err := nd.d.awaitStamps(targets[nd.count][0]); err != nil {
				return nil, fmt.Errorf("%s, %d Services: %w", l.mode, nd.count, err)
			}
			for i, rule := range targets[nd.count] {
				cells = append(cells, &fpCell{mode: l.mode, count: nd.count, last: i == 0, d: nd.d,
					tg: FirstPacketTarget{Rule: rule}})
			}
		}
	}
	for _, c := range cells {
		for done := 0; done < o.Warmup; done += roundBlock {
			if _, err := c.d.block(c.tg.Rule, min(roundBlock, o.Warmup-done)); err != nil {
				return nil, fmt.Errorf("%s, %d Services: warming up %s: %w", c.mode, c.count, c.tg.Rule.Name, err)
			}
		}
	}
	res.Block = roundBlock
	res.Rounds = (o.Connections + roundBlock - 1) / roundBlock
	for r, order := range RoundOrder(len(cells), res.Rounds) {
		res.RoundLoad = append(res.RoundLoad, loadAvg())
		began := time.Now()
		n := min(roundBlock, o.Connections-r*roundBlock)
		for _, ci := range order {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			c := cells[ci]
			b, err := c.d.block(c.tg.Rule, n)
			if err != nil {
				return nil, fmt.Errorf("%s, %d Services: %s: %w", c.mode, c.count, c.tg.Rule.Name, err)
			}
			c.add(b)
		}
		res.RoundTook = append(res.RoundTook, time.Since(began))
		logf("round %d of %d done in %v (load average %s)", r+1, res.Rounds, res.RoundTook[r].Round(time.Millisecond), loadAvg())
	}
	for _, l := range labs {
		for _, nd := range l.nodes {
			pt := FirstPacketPoint{Mode: l.mode, Services: nd.count, Rules: totals[nd.count], Sync: nd.sync}
			for _, c := range cells {
				if c.mode != l.mode || c.count != nd.count {
					continue
				}
				if c.tg.Failed > o.Connections/10 || len(c.tg.Setup) < o.Connections/2 {
					return nil, fmt.Errorf("%s, %d Services: %s: %d of %d connections failed (first: %v), %d SYNs unanswered, %d handshakes stamped outside connect(): too few to time",
						c.mode, c.count, c.tg.Rule.Name, c.tg.Failed, o.Connections, c.firstErr, c.tg.Unanswered, c.tg.Unstamped)
				}
				if c.last {
					pt.Last = c.tg
				} else {
					pt.Middle = c.tg
				}
			}
			logf("%s, %d Services: last %s p50 %v, middle %s p50 %v", l.mode, nd.count,
				pt.Last.Rule.Name, Percentile(pt.Last.Setup, 50), pt.Middle.Rule.Name, Percentile(pt.Middle.Setup, 50))
			res.Points = append(res.Points, pt)
		}
	}
	res.LoadAfter = loadAvg()
	return res, nil
}

// fpNodeSpec is the node of the generated lab that holds count k: node nk,
// its client pod pk-0 and its endpoint pods pk-1 to pk-3.
type fpNodeSpec struct {
	name      string
	client    spec.Pod
	endpoints []netip.Addr
	servers   []string
}

func firstPacketNode(t *spec.Topology, k int) fpNodeSpec {
	n := fpNodeSpec{name: t.Nodes[k].Name}
	for _, p := range t.Pods {
		if p.Node != n.name {
			continue
		}
		if n.client.Name == "" {
			n.client = p
			continue
		}
		n.endpoints = append(n.endpoints, p.IP)
		n.servers = append(n.servers, p.Name)
	}
	return n
}

// fpLab is one mode's lab: a node per count, each synced and with its
// client's capture open.
type fpLab struct {
	mode, name string
	nodes      []*fpNode
	closers    []func()
}

// fpNode is one count in one mode.
type fpNode struct {
	count int
	d     *dialer
	sync  time.Duration
}

// up brings the lab up, registers it in labs (so the caller downs it
// whatever happens next), starts the endpoint pods' listeners, syncs
// each node to its count and opens each client's capture.
func (l *fpLab) up(ctx context.Context, base *spec.Topology, counts []int, targets map[int][2]ServiceRule, totals map[int]int,
	labs *[]*fpLab, logf func(string, ...any)) error {
	t := *base
	switch l.mode {
	case FirstPacketIptablesNFT:
		t.Iptables, t.KubeProxy.Mode = spec.IptablesNFT, spec.KubeProxyIPTables
	case FirstPacketIptablesLegacy:
		t.Iptables, t.KubeProxy.Mode = spec.IptablesLegacy, spec.KubeProxyIPTables
	case FirstPacketNFTables:
		t.KubeProxy.Mode = spec.KubeProxyNFTables
	default:
		return fmt.Errorf("unknown mode %q; use %q, %q or %q", l.mode, FirstPacketIptablesNFT, FirstPacketIptablesLegacy, FirstPacketNFTables)
	}
	if _, err := lab.Up(ctx, &t, lab.UpOptions{Name: l.name, NoApps: true}); err != nil {
		return err
	}
	*labs = append(*labs, l)
	open := func(object string) (*ns.NS, error) { return ns.Open(spec.NSName(l.name, object)) }
	for k, n := range counts {
		if err := ctx.Err(); err != nil {
			return err
		}
		spc := firstPacketNode(&t, k)
		nodeNS, err := open(spc.name)
		if err != nil {
			return err
		}
		l.closers = append(l.closers, nodeNS.Close)
		clientNS, err := open(spc.client.Name)
		if err != nil {
			return err
		}
		l.closers = append(l.closers, clientNS.Close)
		for _, pod := range spc.servers {
			stop, err := listen(open, pod)
			if err != nil {
				return err
			}
			l.closers = append(l.closers, stop)
		}
		sync, err := newSyncer(&t, spc.name, l.mode, nodeNS)
		if err != nil {
			return err
		}
		svcs, err := FirstPacketServices(n, spc.endpoints, endpointPort)
		if err != nil {
			return err
		}
		start := time.Now()
		payload, err := sync(svcs)
		if err != nil {
			return fmt.Errorf("node %s, %d Services: sync: %w", spc.name, n, err)
		}
		took := time.Since(start)
		if payload != nil { // iptables mode: what was applied orders the chain as predicted
			rules, total, err := KubeServicesOrder(payload)
			if err != nil {
				return fmt.Errorf("node %s, %d Services: %w", spc.name, n, err)
			}
			if last, middle := LastAndMiddle(rules); last != targets[n][0] || middle != targets[n][1] || total != totals[n] {
				return fmt.Errorf("node %s, %d Services: the applied KUBE-SERVICES has %s last and %s in the middle, not %s and %s",
					spc.name, n, last.Name, middle.Name, targets[n][0].Name, targets[n][1].Name)
			}
		}
		sock, err := capture.Open(clientNS, walk.Point{Object: spc.client.Name, Iface: "eth0"})
		if err != nil {
			return err
		}
		l.closers = append(l.closers, sock.Close)
		l.nodes = append(l.nodes, &fpNode{count: n, sync: took,
			d: &dialer{ns: clientNS, client: spc.client, sock: sock, port: firstSourcePort}})
		logf("%s, %d Services (lab %s, node %s): synced in %v", l.mode, n, l.name, spc.name, took.Round(time.Millisecond))
	}
	return nil
}

// close stops the listeners and closes the captures and namespace
// handles, last opened first.
func (l *fpLab) close() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
	l.closers = nil
}

// fpCell is one Service dialled: a mode, a count, the last or the middle.
type fpCell struct {
	mode     string
	count    int
	last     bool
	d        *dialer
	tg       FirstPacketTarget
	firstErr error
}

// add counts one round's block.
func (c *fpCell) add(b blockResult) {
	c.tg.Setup = append(c.tg.Setup, b.setup...)
	c.tg.Rounds = append(c.tg.Rounds, b.setup)
	c.tg.Connect = append(c.tg.Connect, b.connect...)
	c.tg.Failed += b.failed
	c.tg.Unanswered += b.unanswered
	c.tg.Unstamped += b.unstamped
	if c.firstErr == nil {
		c.firstErr = b.firstErr
	}
}

// newSyncer returns what brings node's rules to a list of Services the
// way kube-proxy would in mode: one proxier, each sync partial after the
// first (the benchmark syncs each node once, in full, as kube-proxy does
// when it starts). In iptables mode it returns the payload it applied.
func newSyncer(t *spec.Topology, node, mode string, h *ns.NS) (func([]kubeproxy.ServicePort) ([]byte, error), error) {
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
	// roundBlock are the connections to each Service in a round; the
	// capture is read after each block, well before its buffer (4 MiB)
	// could fill with their four frames each.
	roundBlock = 100
	// dialTimeout bounds one connection's setup; the SYN-ACK comes in
	// microseconds, or not at all when the rules are wrong.
	dialTimeout = 2 * time.Second
	// settle is the pause between a sync and its timing.
	settle = 2 * time.Second
)

// dialer dials from the client pod with a capture of its eth0 that stays
// open for the whole benchmark: every close and open of a timestamping socket
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

// blockResult is one block of connections to one Service.
type blockResult struct {
	// setup are the SYN to SYN-ACK times of the connections whose frames
	// were stamped inside their connect(); connect the connect() times.
	setup, connect                []time.Duration
	failed, unanswered, unstamped int
	firstErr                      error
}

// block opens n new connections from the client pod to rule's ClusterIP,
// each from the next source port, each reset at once (SO_LINGER 0: no
// TIME_WAIT), and pairs their SYN and SYN-ACK in the capture. The capture
// is drained before (whatever an earlier block left, such as its RSTs) and
// after: connect() returns only once the SYN-ACK has passed eth0, so the
// block's frames are queued by then. A pair stamped outside its connect()
// call is not counted.
func (d *dialer) block(rule ServiceRule, n int) (blockResult, error) {
	var b blockResult
	if _, err := d.sock.Drain(); err != nil {
		return b, err
	}
	windows := make(map[uint16]Window, n)
	err := d.ns.Do(func() error {
		for range n {
			port := d.nextPort()
			start := time.Now()
			took, err := dial(d.client.IP, port, rule.Dst)
			windows[uint16(port)] = Window{Start: start, End: time.Now()}
			if err != nil {
				b.failed++
				if b.firstErr == nil {
					b.firstErr = err
				}
				continue
			}
			b.connect = append(b.connect, took)
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	fs, err := d.sock.Drain()
	if err != nil {
		return b, err
	}
	frames := make([]Frame, 0, len(fs))
	for _, f := range fs {
		frames = append(frames, Frame{Time: f.Time, Out: f.Dir == walk.Out, Data: f.Data[:min(len(f.Data), 128)]})
	}
	setups, unanswered := Setups(frames, d.client.IP, rule.Dst)
	b.setup, b.unstamped = InWindows(setups, windows)
	b.unanswered = len(unanswered)
	return b, nil
}

// awaitStamps dials rule until a round of connections is all stamped
// inside connect(): the kernel enables packet timestamps from a workqueue
// after the capture socket asked for them.
func (d *dialer) awaitStamps(rule ServiceRule) error {
	const round = 20
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := d.block(rule, round)
		if err == nil && b.unstamped == 0 && len(b.setup) == round {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the capture of %s/eth0 still stamps frames outside connect() after 10 s (last round: %d of %d outside, %d failed (first: %v); %v)",
				d.client.Name, b.unstamped, round, b.failed, b.firstErr, err)
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

// memAvailable is /proc/meminfo's MemAvailable in bytes, or -1.
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
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
