package bench

import (
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/labctl/labctl/lab/kubeproxy"
)

var benchEndpoints = []netip.Addr{netip.MustParseAddr("10.0.0.6"), netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.8")}

// render is kube-proxy's full iptables sync of svcs.
func render(t *testing.T, svcs []kubeproxy.ServicePort) []byte {
	t.Helper()
	p, err := kubeproxy.NewProxier(kubeproxy.Config{NodeName: "n0", NodeIPs: []netip.Addr{netip.MustParseAddr("10.0.0.4")}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Sync(svcs)
	if err != nil {
		t.Fatal(err)
	}
	return r.Payload
}

func TestKubeServicesOrderFollowsTheRenderedChainNotTheServiceIndex(t *testing.T) {
	svcs, err := FirstPacketServices(12, benchEndpoints, 8080)
	if err != nil {
		t.Fatal(err)
	}
	// A Service without endpoints writes a REJECT into filter's
	// KUBE-SERVICES; that chain must not count.
	svcs[3].Endpoints = nil
	payload := render(t, svcs)
	if !strings.Contains(string(payload), "*filter\n") || !strings.Contains(string(payload), "-A KUBE-SERVICES -m comment --comment \"bench/svc-3:http has no endpoints\"") {
		t.Fatalf("the fixture lost filter's KUBE-SERVICES reject:\n%s", payload)
	}
	rules, total, err := KubeServicesOrder(payload)
	if err != nil {
		t.Fatal(err)
	}
	// kube-proxy sorts by ServicePortName: svc-0, svc-1, svc-10, svc-11,
	// svc-2, ... svc-9; svc-3 has no nat rule; the NodePorts jump is last.
	var names []string
	for _, r := range rules {
		names = append(names, strings.TrimPrefix(r.Name, "bench/"))
	}
	want := "svc-0:http svc-1:http svc-10:http svc-11:http svc-2:http svc-4:http svc-5:http svc-6:http svc-7:http svc-8:http svc-9:http"
	if strings.Join(names, " ") != want {
		t.Errorf("order %v, want %s", names, want)
	}
	if total != 12 {
		t.Errorf("%d nat KUBE-SERVICES rules, want 11 ClusterIP rules and the NodePorts jump", total)
	}
	last, middle := LastAndMiddle(rules)
	if last.Name != "bench/svc-9:http" || last.Position != 11 || last.Dst != netip.MustParseAddrPort("172.20.0.19:80") {
		t.Errorf("last = %+v, want bench/svc-9:http at rule 11, 172.20.0.19:80", last)
	}
	if middle.Name != "bench/svc-4:http" || middle.Position != 6 {
		t.Errorf("middle = %+v, want bench/svc-4:http at rule 6 (index 11/2)", middle)
	}
	// With an even count the middle is the upper one of the two: rule
	// 5,001 of 10,000, as the docs say.
	even := []ServiceRule{{Position: 1}, {Position: 2}, {Position: 3}, {Position: 4}}
	if last, middle := LastAndMiddle(even); last.Position != 4 || middle.Position != 3 {
		t.Errorf("of 4 rules: last %d, middle %d; want 4 and 3", last.Position, middle.Position)
	}
}

func TestKubeServicesOrderErrorsNameTheLine(t *testing.T) {
	for name, c := range map[string]struct{ payload, want string }{
		"no nat":       {"*filter\n-A KUBE-SERVICES -j REJECT\nCOMMIT\n", "no *nat table"},
		"no clusterIP": {"*nat\n-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n", "(1 rules) has no cluster IP rule"},
		"bad address": {"*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m comment --comment \"a/b:p cluster IP\" -d 172.20.0 --dport 80 -j X\n",
			"payload line 3: cluster IP rule of a/b:p: -d \"172.20.0\""},
		"bad port": {"*nat\n-A KUBE-SERVICES -m comment --comment \"a/b:p cluster IP\" -d 172.20.0.1 --dport 80000 -j X\n",
			"payload line 2: cluster IP rule of a/b:p: --dport \"80000\""},
		"open quote": {"*nat\n-A KUBE-SERVICES -m comment --comment \"a/b:p cluster IP -j X\n", "payload line 2: unterminated quote"},
	} {
		_, _, err := KubeServicesOrder([]byte(c.payload))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
	}
}

func TestFirstPacketServicesShareTheEndpointsAndStayInTheServiceCIDR(t *testing.T) {
	svcs, err := FirstPacketServices(10000, benchEndpoints, 8080)
	if err != nil {
		t.Fatal(err)
	}
	cidr := netip.MustParsePrefix("172.20.0.0/16")
	seen := map[netip.Addr]bool{}
	for _, s := range svcs {
		if !cidr.Contains(s.ClusterIP) || s.ClusterIP == cidr.Addr() || seen[s.ClusterIP] {
			t.Fatalf("%s: ClusterIP %v outside %v, its network address, or taken twice", s.String(), s.ClusterIP, cidr)
		}
		seen[s.ClusterIP] = true
		if len(s.Endpoints) != 3 || s.Endpoints[2].IP != benchEndpoints[2] || s.Endpoints[0].Port != 8080 {
			t.Fatalf("%s: endpoints %+v, want the three pods on 8080", s.String(), s.Endpoints)
		}
	}
	for _, n := range []int{0, 65001} {
		if _, err := FirstPacketServices(n, benchEndpoints, 8080); err == nil {
			t.Errorf("%d Services: no error", n)
		}
	}
}

var (
	client = netip.MustParseAddr("10.0.0.5")
	svcIP  = netip.MustParseAddrPort("172.20.0.19:80")
)

// segment is an Ethernet frame of one TCP segment.
func segment(t *testing.T, src, dst netip.AddrPort, syn, ack, rst bool) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: syn, ACK: ack, RST: rst, Seq: 1, Window: 1000}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSetupsPairSYNAndSYNACKBySourcePortFromTheClusterIP(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Microsecond) }
	from := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(client, port) }
	pod := netip.MustParseAddrPort("10.0.0.6:8080")
	other := netip.MustParseAddrPort("172.20.0.20:80")
	frames := []Frame{
		{at(0), true, segment(t, from(20000), svcIP, true, false, false)},     // SYN 20000
		{at(5), true, segment(t, from(20001), svcIP, true, false, false)},     // SYN 20001
		{at(30), false, segment(t, svcIP, from(20001), true, true, false)},    // SYN-ACK 20001: 25 µs
		{at(40), false, segment(t, svcIP, from(20000), true, true, false)},    // SYN-ACK 20000: 40 µs
		{at(41), true, segment(t, from(20000), svcIP, false, true, false)},    // ACK: not a setup
		{at(42), true, segment(t, from(20000), svcIP, false, false, true)},    // RST
		{at(50), true, segment(t, from(20002), svcIP, true, false, false)},    // SYN 20002 ...
		{at(1050), true, segment(t, from(20002), svcIP, true, false, false)},  // ... retransmitted
		{at(1070), false, segment(t, svcIP, from(20002), true, true, false)},  // answered 1020 µs after the first SYN
		{at(1100), false, segment(t, svcIP, from(20002), true, true, false)},  // a second SYN-ACK: ignored
		{at(1200), true, segment(t, from(20003), svcIP, true, false, false)},  // SYN 20003 ...
		{at(1210), false, segment(t, pod, from(20003), true, true, false)},    // ... answered by the pod's own address: no
		{at(1300), true, segment(t, from(20004), other, true, false, false)},  // another Service: not ours
		{at(1310), false, segment(t, other, from(20004), true, true, false)},  // its answer
		{at(1400), false, segment(t, svcIP, from(20005), true, true, false)},  // a SYN-ACK without a SYN
		{at(1500), true, segment(t, svcIP, from(20006), true, true, false)},   // a SYN-ACK going out: not a reply
		{at(1501), false, segment(t, from(20007), svcIP, true, false, false)}, // a SYN coming in: not the client's
	}
	setups, unanswered := Setups(frames, client, svcIP)
	want := []Setup{{20001, at(5), at(30)}, {20000, at(0), at(40)}, {20002, at(50), at(1070)}}
	if len(setups) != len(want) {
		t.Fatalf("setups %v, want %v", setups, want)
	}
	for i := range want {
		if setups[i] != want[i] {
			t.Errorf("setup %d = %+v, want %+v", i, setups[i], want[i])
		}
	}
	if setups[2].Time() != 1020*time.Microsecond {
		t.Errorf("retransmitted SYN's setup = %v, want 1.02ms from the first SYN", setups[2].Time())
	}
	if len(unanswered) != 1 || unanswered[0] != 20003 {
		t.Errorf("unanswered %v, want [20003] (its only answer came from the pod's address)", unanswered)
	}
	// A garbage frame is skipped, not a panic.
	if setups, _ := Setups([]Frame{{at(0), true, []byte{1, 2, 3}}}, client, svcIP); len(setups) != 0 {
		t.Errorf("garbage frame gave setups %v", setups)
	}
}

func TestInWindowsDropsHandshakesStampedOutsideTheirConnect(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Microsecond) }
	setups := []Setup{
		{1, at(10), at(30)},   // inside [0, 50]
		{2, at(110), at(150)}, // SYN-ACK at the window's very end: inside
		{3, at(190), at(230)}, // SYN before the window (stamped early? no: a wrong window)
		{4, at(400), at(402)}, // both stamped when read, after connect() returned
		{5, at(500), at(520)}, // no window: not a timed connection
	}
	windows := map[uint16]Window{1: {at(0), at(50)}, 2: {at(100), at(150)}, 3: {at(200), at(260)}, 4: {at(300), at(350)}}
	times, outside := InWindows(setups, windows)
	if len(times) != 2 || times[0] != 20*time.Microsecond || times[1] != 40*time.Microsecond || outside != 3 {
		t.Errorf("InWindows = %v, %d outside; want [20µs 40µs], 3 outside", times, outside)
	}
}

// places are, for each cell, its place in each round of order.
func places(t *testing.T, order [][]int, n int) [][]int {
	t.Helper()
	out := make([][]int, n)
	for r, round := range order {
		seen := make([]bool, n)
		for place, cell := range round {
			if cell < 0 || cell >= n || seen[cell] {
				t.Fatalf("round %d = %v: not every one of the %d cells exactly once", r, round, n)
			}
			seen[cell] = true
			out[cell] = append(out[cell], place)
		}
		if len(round) != n {
			t.Fatalf("round %d = %v: %d cells, want %d", r, round, len(round), n)
		}
	}
	return out
}

func TestRoundOrderDialsEveryCellEachRoundAtPlacesThatAverageToTheMiddle(t *testing.T) {
	for _, c := range []struct{ cells, rounds int }{{24, 10}, {16, 10}, {8, 10}, {8, 3}, {8, 20}, {4, 4}, {2, 10}} {
		order := RoundOrder(c.cells, c.rounds)
		if len(order) != c.rounds {
			t.Fatalf("%d cells, %d rounds: %d rounds", c.cells, c.rounds, len(order))
		}
		mid := float64(c.cells-1) / 2
		for cell, ps := range places(t, order, c.cells) {
			sum := 0
			for _, p := range ps {
				sum += p
			}
			// Starting points spread evenly: a cell's mean place is off
			// the middle by less than one start-to-start step, cells/rounds.
			if mean := float64(sum) / float64(c.rounds); math.Abs(mean-mid) > float64(c.cells)/float64(c.rounds) {
				t.Errorf("%d cells, %d rounds: cell %d's places %v average %.2f, want within %.2f of %.1f",
					c.cells, c.rounds, cell, ps, mean, float64(c.cells)/float64(c.rounds), mid)
			}
		}
		// No cell always follows the same one (-1: first in its round).
		if c.cells >= 3 && c.rounds >= 2 {
			for cell := range c.cells {
				before := map[int]bool{}
				for _, round := range order {
					for i, x := range round {
						if x == cell && i > 0 {
							before[round[i-1]] = true
						} else if x == cell {
							before[-1] = true
						}
					}
				}
				if len(before) < 2 {
					t.Errorf("%d cells, %d rounds: cell %d always comes right after %v", c.cells, c.rounds, cell, before)
				}
			}
		}
	}
	// The rounds start at cells spread evenly over all of them, not at
	// neighbours: 24 cells in 10 rounds start 2 or 3 cells apart.
	var starts []int
	for _, round := range RoundOrder(24, 10) {
		starts = append(starts, round[0])
	}
	slices.Sort(starts)
	for i, s := range starts {
		next := 24 + starts[0]
		if i+1 < len(starts) {
			next = starts[i+1]
		}
		if gap := next - s; gap < 2 || gap > 3 {
			t.Errorf("24 cells, 10 rounds: the rounds start at cells %v; want them 2 or 3 apart", starts)
			break
		}
	}
	// As many rounds as cells: every cell at every place once.
	for cell, ps := range places(t, RoundOrder(4, 4), 4) {
		slices.Sort(ps)
		if !slices.Equal(ps, []int{0, 1, 2, 3}) {
			t.Errorf("4 cells, 4 rounds: cell %d at places %v, want each of 0-3 once", cell, ps)
		}
	}
	if RoundOrder(0, 3) != nil || RoundOrder(3, 0) != nil {
		t.Error("no cells or no rounds: want no order")
	}
}

// TestInterleavedRoundsCancelALoadRamp simulates the benchmark on a machine
// whose load doubles every setup time over the run, with the four counts'
// true p50 all 10 µs: measured one count after the other, the largest count
// looks 60 % slower than the smallest; in RoundOrder's rounds it stays
// within 2 %, both pooled and round by round.
func TestInterleavedRoundsCancelALoadRamp(t *testing.T) {
	const cells, rounds, block = 8, 10, 100 // 4 counts x (last, middle)
	total := float64(cells * rounds * block)
	load := func(k int) time.Duration { return time.Duration(10000 * (1 + float64(k)/total)) } // ns, 10 µs to 20 µs
	run := func(order [][]int) [][][]time.Duration {
		got := make([][][]time.Duration, cells)
		for c := range got {
			got[c] = make([][]time.Duration, rounds)
		}
		k := 0
		for r, round := range order {
			for _, c := range round {
				for range block {
					got[c][r] = append(got[c][r], load(k))
					k++
				}
			}
		}
		return got
	}
	pooled := func(rs [][]time.Duration) time.Duration { return Percentile(slices.Concat(rs...), 50) }
	change := func(got [][][]time.Duration) float64 {
		lo, hi := pooled(got[0]), pooled(got[cells-1]) // smallest count's last Service, largest count's middle
		return float64(hi-lo) / float64(lo)
	}
	// One count after the other: all rounds of cell 0, then of cell 1, ...
	seq := make([][][]time.Duration, cells)
	k := 0
	for c := range cells {
		seq[c] = make([][]time.Duration, rounds)
		for r := range rounds {
			for range block {
				seq[c][r] = append(seq[c][r], load(k))
				k++
			}
		}
	}
	if ch := change(seq); ch < 0.5 {
		t.Fatalf("sequential: change %.3f; the simulated ramp should make it look like growth", ch)
	}
	got := run(RoundOrder(cells, rounds))
	if ch := change(got); math.Abs(ch) > 0.02 {
		t.Errorf("interleaved: the ramp moved the largest count %.1f %% against the smallest, want within 2 %%", 100*ch)
	}
	if med, _, _, err := RoundChange(got[0], got[cells-1]); err != nil || math.Abs(med) > 0.02 {
		t.Errorf("interleaved, round by round: median change %.3f, %v; want within 2 %%", med, err)
	}
	// The same rounds always in one order do not cancel it: the last cell
	// of every round is dialled a round's worth of ramp later.
	fixed := make([][]int, rounds)
	for r := range fixed {
		fixed[r] = []int{0, 1, 2, 3, 4, 5, 6, 7}
	}
	if ch := change(run(fixed)); ch < 0.05 {
		t.Errorf("fixed order: change %.3f; the test no longer tells a rotating order from a fixed one", ch)
	}
}

func TestRoundSpreadIsTheMedianAndRangeOfEachRoundsP50(t *testing.T) {
	rounds := [][]time.Duration{
		{us(10), us(11), us(50)}, // p50 11
		{},                       // no samples: skipped
		{us(30), us(9), us(8)},   // p50 9
		{us(14)},                 // p50 14
		{us(12), us(13)},         // p50 12 (nearest rank: the lower)
	}
	got := RoundSpread(rounds)
	want := Spread{Median: us(11), Min: us(9), Max: us(14), Rounds: 4}
	if got != want {
		t.Errorf("RoundSpread = %+v, want %+v", got, want)
	}
	if got := RoundSpread([][]time.Duration{{}, nil}); got != (Spread{}) {
		t.Errorf("no samples: %+v, want zero", got)
	}
}

func TestRoundChangeComparesTwoCellsWithinEachRound(t *testing.T) {
	// The load doubles from round to round; hi is 10 % slower than lo in
	// every round but one (+30 %), and one round lacks lo's samples.
	lo := [][]time.Duration{{us(10)}, {us(20)}, {us(40)}, {}, {us(80)}}
	hi := [][]time.Duration{{us(11)}, {us(22)}, {us(52)}, {us(99)}, {us(88)}}
	med, least, most, err := RoundChange(lo, hi)
	if err != nil || math.Abs(med-0.1) > 1e-9 || math.Abs(least-0.1) > 1e-9 || math.Abs(most-0.3) > 1e-9 {
		t.Errorf("RoundChange = %v, %v, %v, %v; want median 0.1, from 0.1 to 0.3", med, least, most, err)
	}
	// Nearest-rank median of an even count: the lower middle change.
	med, _, _, err = RoundChange([][]time.Duration{{us(10)}, {us(10)}}, [][]time.Duration{{us(11)}, {us(13)}})
	if err != nil || math.Abs(med-0.1) > 1e-9 {
		t.Errorf("median of +10 %% and +30 %% = %v, %v; want 0.1", med, err)
	}
	for name, c := range map[string][2][][]time.Duration{
		"rounds differ": {{{us(1)}}, {{us(1)}, {us(2)}}},
		"no shared":     {{{us(1)}, {}}, {{}, {us(2)}}},
		"zero p50":      {{{0}}, {{us(2)}}},
	} {
		if _, _, _, err := RoundChange(c[0], c[1]); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
