package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/walk"
)

// ServiceRule is one ClusterIP rule of the nat table's KUBE-SERVICES chain,
// as iptables-restore input writes it.
type ServiceRule struct {
	// Position is the rule's 1-based place among all of nat KUBE-SERVICES's
	// rules: how many rules the first packet to this ClusterIP walks.
	Position int
	// Name is the ServicePortName from the rule's comment, "ns/name:port".
	Name string
	Dst  netip.AddrPort
}

// KubeServicesOrder reads the ClusterIP rules of nat KUBE-SERVICES from an
// iptables-restore payload in chain order, and the chain's rule count. The
// first packet of a connection walks that chain rule by rule, so the last
// ClusterIP rule is the iptables mode's most expensive Service. Only the
// *nat table counts (filter has its own KUBE-SERVICES for rejects).
func KubeServicesOrder(payload []byte) (rules []ServiceRule, total int, err error) {
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	table := ""
	sawNAT := false
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		if strings.HasPrefix(l, "*") {
			table = l[1:]
			sawNAT = sawNAT || table == "nat"
			continue
		}
		if table != "nat" || !strings.HasPrefix(l, "-A KUBE-SERVICES ") {
			continue
		}
		total++
		args, err := splitRule(l)
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: %w", line, err)
		}
		comment, dst, dport := flag(args, "--comment"), flag(args, "-d"), flag(args, "--dport")
		name, ok := strings.CutSuffix(comment, " cluster IP")
		if !ok {
			continue // external IP, load balancer IP, the NodePorts jump, ...
		}
		ip, err := netip.ParseAddr(strings.TrimSuffix(dst, "/32"))
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: cluster IP rule of %s: -d %q: %w", line, name, dst, err)
		}
		port, err := strconv.ParseUint(dport, 10, 16)
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: cluster IP rule of %s: --dport %q: %w", line, name, dport, err)
		}
		rules = append(rules, ServiceRule{Position: total, Name: name, Dst: netip.AddrPortFrom(ip, uint16(port))})
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading the payload: %w", err)
	}
	if !sawNAT {
		return nil, 0, fmt.Errorf("payload has no *nat table")
	}
	if len(rules) == 0 {
		return nil, total, fmt.Errorf("payload's nat KUBE-SERVICES (%d rules) has no cluster IP rule", total)
	}
	return rules, total, nil
}

// LastAndMiddle are the ClusterIP rules a first-packet benchmark dials: the
// last in KUBE-SERVICES and the one halfway down (index len/2).
func LastAndMiddle(rules []ServiceRule) (last, middle ServiceRule) {
	return rules[len(rules)-1], rules[len(rules)/2]
}

// splitRule splits an iptables-restore rule into words, a double-quoted
// word (a comment) being one word without its quotes.
func splitRule(l string) ([]string, error) {
	var out []string
	for i := 0; i < len(l); {
		switch {
		case l[i] == ' ':
			i++
		case l[i] == '"':
			end := strings.IndexByte(l[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote at column %d: %s", i+1, l)
			}
			out = append(out, l[i+1:i+1+end])
			i += end + 2
		default:
			end := strings.IndexByte(l[i:], ' ')
			if end < 0 {
				end = len(l) - i
			}
			out = append(out, l[i:i+end])
			i += end
		}
	}
	return out, nil
}

// flag is the word after name in args, or "".
func flag(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// Frame is one frame captured at the client's interface: when, which way
// (Out: sent by the client), and its bytes from the Ethernet header on.
type Frame struct {
	Time time.Time
	Out  bool
	Data []byte
}

// Setup is one connection's handshake as the client's capture saw it.
type Setup struct {
	Port        uint16
	SYN, SYNACK time.Time
}

// Time is SYN to SYN-ACK.
func (s Setup) Time() time.Duration { return s.SYNACK.Sub(s.SYN) }

// Setups pairs each SYN the client sent to svc with the first SYN-ACK that
// came back from svc to the same source port, in the order the SYN-ACKs
// came, and returns the source ports whose SYN got no SYN-ACK. A
// retransmitted SYN does not restart the clock: setup time is from the
// first SYN, as the client waits it. The SYN-ACK must come from the
// ClusterIP itself (conntrack reverses the DNAT), so a reply that bypassed
// the Service does not count.
func Setups(frames []Frame, client netip.Addr, svc netip.AddrPort) (setups []Setup, unanswered []uint16) {
	syn := map[uint16]time.Time{}
	var order []uint16
	done := map[uint16]bool{}
	for _, f := range frames {
		p := walk.Decode(f.Data)
		if p.Proto != "tcp" || !p.TCP.SYN {
			continue
		}
		switch {
		case f.Out && !p.TCP.ACK && p.Src == client && p.Dst == svc.Addr() && p.DstPort == svc.Port():
			if _, seen := syn[p.SrcPort]; !seen {
				syn[p.SrcPort] = f.Time
				order = append(order, p.SrcPort)
			}
		case !f.Out && p.TCP.ACK && p.Dst == client && p.Src == svc.Addr() && p.SrcPort == svc.Port():
			t0, ok := syn[p.DstPort]
			if ok && !done[p.DstPort] && !f.Time.Before(t0) {
				done[p.DstPort] = true
				setups = append(setups, Setup{Port: p.DstPort, SYN: t0, SYNACK: f.Time})
			}
		}
	}
	for _, port := range order {
		if !done[port] {
			unanswered = append(unanswered, port)
		}
	}
	return setups, unanswered
}

// Window is when the client's connect() on one source port started and
// returned.
type Window struct{ Start, End time.Time }

// InWindows are the setup times whose SYN and SYN-ACK both fall inside
// their connection's connect() window, and how many did not. Both frames
// pass the client's eth0 while connect() waits, so a frame stamped outside
// it was stamped late: the kernel turns packet timestamps on a moment
// after the first socket asks (net_enable_timestamp defers it to a
// workqueue), and a frame without one is stamped when it is read.
func InWindows(setups []Setup, windows map[uint16]Window) (times []time.Duration, outside int) {
	for _, s := range setups {
		w, ok := windows[s.Port]
		if !ok || s.SYN.Before(w.Start) || s.SYNACK.After(w.End) {
			outside++
			continue
		}
		times = append(times, s.Time())
	}
	return times, outside
}

// FirstPacketServices are n ClusterIP Services "bench/svc-<i>" (port 80,
// ClusterIPs 172.20.0.10 on, in the generated lab's 172.20.0.0/16 Service
// CIDR), every one selecting the same endpoints on targetPort: Services may
// share pods, and pods that really answer make a SYN-ACK to time.
func FirstPacketServices(n int, endpoints []netip.Addr, targetPort int32) ([]kubeproxy.ServicePort, error) {
	if n < 1 || n > maxFirstPacketServices {
		return nil, fmt.Errorf("first packet: %d Services; use 1 to %d (ClusterIPs in one /16)", n, maxFirstPacketServices)
	}
	var eps []kubeproxy.Endpoint
	for _, ip := range endpoints {
		eps = append(eps, kubeproxy.Endpoint{IP: ip, Port: targetPort, Ready: true, Serving: true, Local: true})
	}
	svcs := make([]kubeproxy.ServicePort, n)
	for i := range svcs {
		k := i + firstClusterIPOffset
		svcs[i] = kubeproxy.ServicePort{Namespace: "bench", Name: fmt.Sprintf("svc-%d", i), PortName: "http", Protocol: "TCP",
			Port: 80, ClusterIP: netip.AddrFrom4([4]byte{172, 20, byte(k >> 8), byte(k)}), Endpoints: eps}
	}
	return svcs, nil
}

// firstClusterIPOffset keeps 172.20.0.0 (the CIDR's network address) out;
// maxFirstPacketServices keeps the last ClusterIP below 172.20.255.255.
const (
	firstClusterIPOffset   = 10
	maxFirstPacketServices = 65000
)

// RoundOrder is the order in which each of rounds rounds dials n cells
// (a cell: one Service at one count in one mode), so that a change in the
// machine's load falls on every cell alike. Every round dials every cell
// once; round r starts at cell r·n/rounds, so the starting points spread
// evenly over the cells, and odd rounds go backwards, so a cell is not
// always dialled right after the same neighbour. Over the rounds each
// cell's mean place in the round is then near the middle, (n-1)/2: no
// count is always dialled first, when a round's load is not yet known, or
// last. With rounds a multiple of n (and n even) the places form a Latin
// square.
func RoundOrder(n, rounds int) [][]int {
	if n < 1 || rounds < 1 {
		return nil
	}
	out := make([][]int, rounds)
	for r := range out {
		start := r * n / rounds
		order := make([]int, n)
		for k := range order {
			if r%2 == 0 {
				order[k] = (start + k) % n
			} else {
				order[k] = ((start-k)%n + n) % n
			}
		}
		out[r] = order
	}
	return out
}

// Spread summarises one cell's rounds: the p50 of each round, then the
// median of those p50s and the least and greatest of them. The rounds'
// spread shows how much the time of measurement moved a cell's p50.
// Medians are nearest-rank, as Percentile's.
type Spread struct {
	Median, Min, Max time.Duration
	// Rounds is how many rounds had samples.
	Rounds int
}

// RoundSpread is the Spread of rounds, each round's setup times; a round
// without samples is skipped.
func RoundSpread(rounds [][]time.Duration) Spread {
	var p50s []time.Duration
	for _, r := range rounds {
		if len(r) > 0 {
			p50s = append(p50s, Percentile(r, 50))
		}
	}
	if len(p50s) == 0 {
		return Spread{}
	}
	return Spread{Median: Percentile(p50s, 50), Min: slices.Min(p50s), Max: slices.Max(p50s), Rounds: len(p50s)}
}

// RoundChange compares two cells measured in the same rounds, round by
// round: for each round both cells have samples in, (p50 of hi - p50 of
// lo) / p50 of lo, so 0.1 is hi 10 % slower than lo in that round; it
// returns the median (nearest rank) of those changes and their least and
// greatest. As
// the two cells of one round are dialled within a second or so of each
// other, a load change between rounds cancels out of each change.
func RoundChange(lo, hi [][]time.Duration) (median, least, most float64, err error) {
	if len(lo) != len(hi) {
		return 0, 0, 0, fmt.Errorf("round change: %d rounds against %d", len(lo), len(hi))
	}
	var ch []float64
	for r := range lo {
		if len(lo[r]) == 0 || len(hi[r]) == 0 {
			continue
		}
		l := Percentile(lo[r], 50)
		if l <= 0 {
			return 0, 0, 0, fmt.Errorf("round change: round %d's p50 is %v", r+1, l)
		}
		ch = append(ch, float64(Percentile(hi[r], 50)-l)/float64(l))
	}
	if len(ch) == 0 {
		return 0, 0, 0, fmt.Errorf("round change: no round has samples of both cells")
	}
	slices.Sort(ch)
	// The nearest-rank median, as Percentile's: of an even count, the
	// lower of the two middle changes.
	return ch[(len(ch)+1)/2-1], ch[0], ch[len(ch)-1], nil
}
