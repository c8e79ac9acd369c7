package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// printFirstPacket is the table (per mode and count: p50 and p99 of the
// last and the middle Service), then the growth per 1,000 Services.
func printFirstPacket(out io.Writer, r *bench.FirstPacketResult, connections int) error {
	fmt.Fprintf(out, "first packet: SYN -> SYN-ACK at the client pod's eth0, %d new connections per Service, 3 endpoints; times in µs\n", connections)
	fmt.Fprintf(out, "machine: %d CPUs, kernel %s; load average before %s, after %s\n", r.CPUs, r.Kernel, r.LoadBefore, r.LoadAfter)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tServices\tKUBE-SERVICES rules\tlast Service (rule)\tp50\tp99\tmiddle Service (rule)\tp50\tp99\tconnect() p50 last/middle\tlost/unstamped\tsync s\t")
	for _, p := range r.Points {
		lost := p.Last.Unanswered + p.Last.Failed + p.Middle.Unanswered + p.Middle.Failed
		rules := strconv.Itoa(p.Rules)
		if p.Mode == bench.FirstPacketNFTables {
			rules = "(none; " + rules + " in iptables mode)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s (#%d)\t%s\t%s\t%s (#%d)\t%s\t%s\t%s / %s\t%d/%d\t%.2f\t\n", p.Mode, p.Services, rules,
			p.Last.Rule.Name, p.Last.Rule.Position, micros(bench.Percentile(p.Last.Setup, 50)), micros(bench.Percentile(p.Last.Setup, 99)),
			p.Middle.Rule.Name, p.Middle.Rule.Position, micros(bench.Percentile(p.Middle.Setup, 50)), micros(bench.Percentile(p.Middle.Setup, 99)),
			micros(bench.Percentile(p.Last.Connect, 50)), micros(bench.Percentile(p.Middle.Connect, 50)), lost, p.Last.Unstamped+p.Middle.Unstamped, p.Sync.Seconds())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "growth per 1,000 Services (least-squares slope of p50 over the counts) and the change of p50 from the smallest to the largest count:")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\tlast µs/1,000\tlast change\tmiddle µs/1,000\tmiddle change\ttarget\t")
	for _, m := range modesOf(r) {
		g := firstPacketGrowth(r, m)
		if g.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t%v\t\n", m, g.err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%+.2f\t%+.1f%%\t%+.2f\t%+.1f%%\t%s\t\n", m, g.last, 100*g.lastChange, g.middle, 100*g.middleChange, g.verdict(m))
	}
	return tw.Flush()
}

// growth is one mode's curve summary.
type growth struct {
	last, middle, lastChange, middleChange float64
	err                                    error
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

// curve is a mode's p50 setup times in µs against the Service count.
func curve(r *bench.FirstPacketResult, mode string, last bool) []bench.Point {
	var pts []bench.Point
	for _, p := range r.Points {
		if p.Mode != mode {
			continue
		}
		t := p.Middle
		if last {
			t = p.Last
		}
		pts = append(pts, bench.Point{X: float64(p.Services), Y: float64(bench.Percentile(t.Setup, 50).Nanoseconds()) / 1000})
	}
	return pts
}

func firstPacketGrowth(r *bench.FirstPacketResult, mode string) growth {
	var g growth
	last, middle := curve(r, mode, true), curve(r, mode, false)
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
	return g
}

// firstPacketChart is the curve: p50 setup time against the Service count,
// the last Service solid and the middle one dashed, one colour per mode.
func firstPacketChart(r *bench.FirstPacketResult) bench.Chart {
	c := bench.Chart{
		Title:    "The first packet's cost: SYN to SYN-ACK through kube-proxy's rules",
		Subtitle: "p50 of new connections from a pod to the ClusterIP Service last and in the middle of iptables mode's KUBE-SERVICES",
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
		c.Series = append(c.Series,
			bench.Series{Name: name + ", last Service", Color: color, Points: curve(r, m, true)},
			bench.Series{Name: name + ", middle Service", Color: color, Dashed: true, Points: curve(r, m, false)})
	}
	return c
}
