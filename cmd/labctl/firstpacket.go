package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab/bench"
	"github.com/labctl/labctl/lab/spec"
)

// intList is a comma-separated list of positive integers as a flag value.
type intList []int

func (l *intList) String() string {
	var s []string
	for _, n := range *l {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out intList
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want positive whole numbers separated by commas", f)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

func (l *intList) Type() string { return "ints" }

// defaultFirstPacketCounts are issue 15's Service counts.
var defaultFirstPacketCounts = []int{100, 1000, 5000, 10000}

// firstPacketModes are the modes --mode and --iptables select: iptables
// mode with the nft backend (EKS's default on AL2023) unless --iptables
// names others, and nftables mode.
func firstPacketModes(mode, backends string) ([]string, error) {
	if mode != "" && mode != spec.KubeProxyIPTables && mode != spec.KubeProxyNFTables {
		return nil, fmt.Errorf("--mode %q: use iptables or nftables", mode)
	}
	if mode == spec.KubeProxyNFTables && backends != "" {
		return nil, fmt.Errorf("--iptables %s: the nftables mode writes no iptables rules; drop --iptables or use --mode iptables", backends)
	}
	var modes []string
	if mode != spec.KubeProxyNFTables {
		if backends == "" {
			backends = spec.IptablesNFT
		}
		for _, b := range strings.Split(backends, ",") {
			switch strings.TrimSpace(b) {
			case spec.IptablesNFT:
				modes = append(modes, bench.FirstPacketIptablesNFT)
			case spec.IptablesLegacy:
				modes = append(modes, bench.FirstPacketIptablesLegacy)
			default:
				return nil, fmt.Errorf("--iptables %q: use nft, legacy or nft,legacy", b)
			}
		}
	}
	if mode != spec.KubeProxyIPTables {
		modes = append(modes, bench.FirstPacketNFTables)
	}
	return modes, nil
}

// benchFirstPacket runs the first-packet benchmark, prints its table and
// the growth per 1,000 Services against issue 15's targets (never failing
// on them), and writes the curve as SVG if asked.
func benchFirstPacket(cmd *cobra.Command, counts []int, connections int, mode, backends, svgPath string) error {
	if len(counts) == 0 {
		counts = defaultFirstPacketCounts
	}
	for i := 1; i < len(counts); i++ {
		if counts[i] <= counts[i-1] {
			return fmt.Errorf("--services %v: list the counts in ascending order, each once", counts)
		}
	}
	if connections < 1 {
		return fmt.Errorf("--connections %d: need at least one", connections)
	}
	modes, err := firstPacketModes(mode, backends)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	r, err := bench.BenchFirstPacket(cmd.Context(), bench.FirstPacketOptions{Counts: counts, Connections: connections,
		Warmup: max(20, connections/20), Modes: modes,
		Log: func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }})
	if err != nil {
		return err
	}
	if err := printFirstPacket(out, r, connections); err != nil {
		return err
	}
	if svgPath != "" {
		svg, err := firstPacketChart(r).SVG()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(svgPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(svgPath, svg, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "curve written to %s\n", svgPath)
	}
	return nil
}

func micros(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Nanoseconds())/1000) }

// spread is a cell's per-round p50s: their median and range.
func spread(t bench.FirstPacketTarget) string {
	sp := bench.RoundSpread(t.Rounds)
	if sp.Rounds == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s-%s)", micros(sp.Median), micros(sp.Min), micros(sp.Max))
}

// printFirstPacket is the table (per mode and count: p50 and p99 of the
// last and the middle Service, and the spread of their per-round p50s),
// then the growth per 1,000 Services.
func printFirstPacket(out io.Writer, r *bench.FirstPacketResult, connections int) error {
	fmt.Fprintf(out, "first packet: SYN -> SYN-ACK at the client pod's eth0, %d new connections per Service, 3 endpoints; times in µs\n", connections)
	fmt.Fprintf(out, "interleaved: every mode and count up at once; %d rounds, each dialling every mode's every count's last and middle Service %d connections, in a rotating order\n",
		r.Rounds, r.Block)
	fmt.Fprintf(out, "machine: %d CPUs, kernel %s; load average before %s, after %s\n", r.CPUs, r.Kernel, r.LoadBefore, r.LoadAfter)
	if len(r.RoundLoad) > 0 {
		var one []string
		for _, l := range r.RoundLoad {
			one = append(one, strings.Fields(l + " ?")[0])
		}
		fmt.Fprintf(out, "load average (1 min) as each round began: %s\n", strings.Join(one, " "))
	}
	if len(r.RoundTook) > 0 {
		var all time.Duration
		for _, d := range r.RoundTook {
			all += d
		}
		fmt.Fprintf(out, "the rounds took %.1f s in all, %v to %v each\n", all.Seconds(),
			slices.Min(r.RoundTook).Round(time.Millisecond), slices.Max(r.RoundTook).Round(time.Millisecond))
	}
	if r.MemBefore > 0 && r.MemUp > 0 {
		fmt.Fprintf(out, "memory: MemAvailable %.1f GiB before the labs, %.1f GiB with every lab up and synced (%d MiB taken)\n",
			float64(r.MemBefore)/(1<<30), float64(r.MemUp)/(1<<30), (r.MemBefore-r.MemUp)>>20)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tServices\tKUBE-SERVICES rules\tlast Service (rule)\tp50\tp99\tround p50s: median (min-max)\tmiddle Service (rule)\tp50\tp99\tround p50s: median (min-max)\tconnect() p50 last/middle\tlost/unstamped\tsync s\t")
	for _, p := range r.Points {
		lost := p.Last.Unanswered + p.Last.Failed + p.Middle.Unanswered + p.Middle.Failed
		rules := strconv.Itoa(p.Rules)
		if p.Mode == bench.FirstPacketNFTables {
			rules = "(none; " + rules + " in iptables mode)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s (#%d)\t%s\t%s\t%s\t%s (#%d)\t%s\t%s\t%s\t%s / %s\t%d/%d\t%.2f\t\n", p.Mode, p.Services, rules,
			p.Last.Rule.Name, p.Last.Rule.Position, micros(bench.Percentile(p.Last.Setup, 50)), micros(bench.Percentile(p.Last.Setup, 99)), spread(p.Last),
			p.Middle.Rule.Name, p.Middle.Rule.Position, micros(bench.Percentile(p.Middle.Setup, 50)), micros(bench.Percentile(p.Middle.Setup, 99)), spread(p.Middle),
			micros(bench.Percentile(p.Last.Connect, 50)), micros(bench.Percentile(p.Middle.Connect, 50)), lost, p.Last.Unstamped+p.Middle.Unstamped, p.Sync.Seconds())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "growth per 1,000 Services (least-squares slope of p50 over the counts), the change of p50 from the smallest to the largest count,")
	fmt.Fprintln(out, "and that change round by round (the two counts' p50s of one round compared): median (min to max):")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tlast µs/1,000\tlast change\tby round\tmiddle µs/1,000\tmiddle change\tby round\ttarget\t")
	for _, m := range modesOf(r) {
		g := firstPacketGrowth(r, m)
		if g.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t%v\t\n", m, g.err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%+.2f\t%+.1f%%\t%s\t%+.2f\t%+.1f%%\t%s\t%s\t\n", m, g.last, 100*g.lastChange, g.lastRounds,
			g.middle, 100*g.middleChange, g.middleRounds, g.verdict(m))
	}
	return tw.Flush()
}

// growth is one mode's curve summary.
type growth struct {
	last, middle, lastChange, middleChange float64
	// lastRounds and middleRounds are the change from the smallest to the
	// largest count round by round, "median (min to max)", or "-".
	lastRounds, middleRounds string
	err                      error
}

// verdict reads a mode's growth against issue 15's targets: iptables mode
// grows with the Service count (the last Service's p50 rises); nftables
// mode stays within 10 % from the smallest to the largest count.
func (g growth) verdict(mode string) string {
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	if mode == bench.FirstPacketNFTables {
		return "within 10 %: " + yes(abs(g.lastChange) <= 0.10 && abs(g.middleChange) <= 0.10)
	}
	return "grows with the count: " + yes(g.last > 0 && g.lastChange > 0)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func modesOf(r *bench.FirstPacketResult) []string {
	var modes []string
	for _, p := range r.Points {
		if len(modes) == 0 || modes[len(modes)-1] != p.Mode {
			modes = append(modes, p.Mode)
		}
	}
	return modes
}

// curve is a mode's p50 setup times in µs against the Service count, and
// the least to the greatest per-round p50 at each count.
func curve(r *bench.FirstPacketResult, mode string, last bool) ([]bench.Point, []bench.Whisker) {
	var pts []bench.Point
	var ws []bench.Whisker
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	for _, p := range r.Points {
		if p.Mode != mode {
			continue
		}
		t := p.Middle
		if last {
			t = p.Last
		}
		pts = append(pts, bench.Point{X: float64(p.Services), Y: us(bench.Percentile(t.Setup, 50))})
		if sp := bench.RoundSpread(t.Rounds); sp.Rounds > 1 {
			ws = append(ws, bench.Whisker{X: float64(p.Services), Lo: us(sp.Min), Hi: us(sp.Max)})
		}
	}
	return pts, ws
}

func firstPacketGrowth(r *bench.FirstPacketResult, mode string) growth {
	var g growth
	last, _ := curve(r, mode, true)
	middle, _ := curve(r, mode, false)
	var errs [4]error
	g.last, errs[0] = bench.GrowthPer1000(last)
	g.middle, errs[1] = bench.GrowthPer1000(middle)
	g.lastChange, errs[2] = bench.RelativeChange(last)
	g.middleChange, errs[3] = bench.RelativeChange(middle)
	for _, e := range errs {
		if e != nil {
			g.err = e
			break
		}
	}
	g.lastRounds, g.middleRounds = "-", "-"
	var lo, hi *bench.FirstPacketPoint
	for i := range r.Points {
		p := &r.Points[i]
		if p.Mode != mode {
			continue
		}
		if lo == nil || p.Services < lo.Services {
			lo = p
		}
		if hi == nil || p.Services > hi.Services {
			hi = p
		}
	}
	if lo != nil && lo != hi {
		g.lastRounds = roundChange(lo.Last, hi.Last)
		g.middleRounds = roundChange(lo.Middle, hi.Middle)
	}
	return g
}

// roundChange is bench.RoundChange from lo to hi as "median (min to max)"
// in per cent, or "-" when the two were not measured in shared rounds.
func roundChange(lo, hi bench.FirstPacketTarget) string {
	med, least, most, err := bench.RoundChange(lo.Rounds, hi.Rounds)
	if err != nil {
		return "-"
	}
	return fmt.Sprintf("%+.1f%% (%+.1f%% to %+.1f%%)", 100*med, 100*least, 100*most)
}

// firstPacketChart is the curve: p50 setup time against the Service count,
// the last Service solid and the middle one dashed, one colour per mode.
func firstPacketChart(r *bench.FirstPacketResult) bench.Chart {
	c := bench.Chart{
		Title:    "The first packet's cost: SYN to SYN-ACK through kube-proxy's rules",
		Subtitle: "p50 to the Service last (solid) and in the middle (dashed) of iptables mode's KUBE-SERVICES; bars: range of per-round p50s",
		XLabel:   "ClusterIP Services on the node (3 endpoints each)",
		YLabel:   "connection setup, p50 (µs)",
	}
	for _, m := range modesOf(r) {
		name, color := m+" mode", "#2ca02c"
		switch m {
		case bench.FirstPacketIptablesNFT:
			name, color = "iptables mode (nft backend)", "#d62728"
		case bench.FirstPacketIptablesLegacy:
			name, color = "iptables mode (legacy backend)", "#1f77b4"
		}
		last, lastBars := curve(r, m, true)
		middle, middleBars := curve(r, m, false)
		c.Series = append(c.Series,
			bench.Series{Name: name + ", last Service", Color: color, Points: last, Whiskers: lastBars},
			bench.Series{Name: name + ", middle Service", Color: color, Dashed: true, Points: middle, Whiskers: middleBars})
	}
	return c
}
