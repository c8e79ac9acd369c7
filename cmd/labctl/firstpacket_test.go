package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/lab/bench"
)

func TestServicesFlagTakesACommaListOfPositiveCounts(t *testing.T) {
	var l intList
	if err := l.Set("100, 1_000,5000,10000"); err != nil || !slices.Equal(l, intList{100, 1000, 5000, 10000}) {
		t.Errorf("Set = %v, %v", l, err)
	}
	if l.String() != "100,1000,5000,10000" {
		t.Errorf("String = %q", l.String())
	}
	for _, bad := range []string{"", "100,", "0", "-5", "1e3", "ten"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

func TestFirstPacketModesDefaultToIptablesNFTAndNFTables(t *testing.T) {
	for _, c := range []struct {
		mode, backends string
		want           []string
		err            string
	}{
		{"", "", []string{bench.FirstPacketIptablesNFT, bench.FirstPacketNFTables}, ""},
		{"", "nft,legacy", []string{bench.FirstPacketIptablesNFT, bench.FirstPacketIptablesLegacy, bench.FirstPacketNFTables}, ""},
		{"iptables", "legacy", []string{bench.FirstPacketIptablesLegacy}, ""},
		{"nftables", "", []string{bench.FirstPacketNFTables}, ""},
		{"nftables", "nft", nil, "writes no iptables rules"},
		{"ipvs", "", nil, `--mode "ipvs"`},
		{"", "nf", nil, `--iptables "nf"`},
	} {
		got, err := firstPacketModes(c.mode, c.backends)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("--mode %q --iptables %q: error %v, want %q", c.mode, c.backends, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("--mode %q --iptables %q = %v, %v; want %v", c.mode, c.backends, got, err, c.want)
		}
	}
}

// result is a first-packet result whose p50s are the given µs, per count.
func result(mode string, counts []int, last, middle []int) []bench.FirstPacketPoint {
	var pts []bench.FirstPacketPoint
	for i, n := range counts {
		pts = append(pts, bench.FirstPacketPoint{Mode: mode, Services: n,
			Last:   bench.FirstPacketTarget{Setup: []time.Duration{us(last[i]), us(last[i]), us(last[i] + 100)}},
			Middle: bench.FirstPacketTarget{Setup: []time.Duration{us(middle[i])}}})
	}
	return pts
}

func us(n int) time.Duration { return time.Duration(n) * time.Microsecond }

func TestFirstPacketSummaryReadsTheTargetsFromTheCurves(t *testing.T) {
	counts := []int{100, 1000, 5000, 10000}
	r := &bench.FirstPacketResult{}
	r.Points = append(r.Points, result(bench.FirstPacketIptablesNFT, counts, []int{10, 28, 100, 190}, []int{10, 19, 55, 100})...)
	r.Points = append(r.Points, result(bench.FirstPacketNFTables, counts, []int{10, 10, 11, 10}, []int{10, 10, 10, 12})...)
	ipt := firstPacketGrowth(r, bench.FirstPacketIptablesNFT)
	if ipt.err != nil || ipt.last < 17 || ipt.last > 19 || ipt.lastChange != 18 || ipt.verdict(bench.FirstPacketIptablesNFT) != "grows with the count: yes" {
		t.Errorf("iptables growth %+v, verdict %q", ipt, ipt.verdict(bench.FirstPacketIptablesNFT))
	}
	nft := firstPacketGrowth(r, bench.FirstPacketNFTables)
	// The middle Service is 20 % slower at 10,000: the target is missed.
	if nft.err != nil || nft.middleChange < 0.199 || nft.middleChange > 0.201 || nft.verdict(bench.FirstPacketNFTables) != "within 10 %: NO" {
		t.Errorf("nftables growth %+v, verdict %q", nft, nft.verdict(bench.FirstPacketNFTables))
	}
	var out bytes.Buffer
	if err := printFirstPacket(&out, r, 3); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+18.12 ", "+1800.0%", "within 10 %: NO", "(none; 0 in iptables mode)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	c := firstPacketChart(r)
	if len(c.Series[0].Whiskers) != 0 {
		t.Errorf("a result without rounds drew whiskers %v", c.Series[0].Whiskers)
	}
	if len(c.Series) != 4 || c.Series[0].Color != c.Series[1].Color || c.Series[0].Color == c.Series[2].Color ||
		c.Series[0].Dashed || !c.Series[1].Dashed || len(c.Series[3].Points) != 4 || c.Series[3].Points[3] != (bench.Point{X: 10000, Y: 12}) {
		t.Errorf("chart series %+v: want last (solid) and middle (dashed) per mode, one colour per mode, a point per count", c.Series)
	}
}

// rounds are per-round setup times: one sample per round, the given µs.
func rounds(ps ...int) [][]time.Duration {
	var out [][]time.Duration
	for _, p := range ps {
		out = append(out, []time.Duration{us(p)})
	}
	return out
}

func TestFirstPacketTablePrintsTheRoundsSpreadAndTheirChangeRoundByRound(t *testing.T) {
	// nftables at 100 and 10,000 Services, three rounds whose load moved
	// both counts alike: round 2 twice as slow, round 3 in between.
	pt := func(n int, last, middle [][]time.Duration) bench.FirstPacketPoint {
		return bench.FirstPacketPoint{Mode: bench.FirstPacketNFTables, Services: n,
			Last:   bench.FirstPacketTarget{Setup: slices.Concat(last...), Rounds: last},
			Middle: bench.FirstPacketTarget{Setup: slices.Concat(middle...), Rounds: middle}}
	}
	r := &bench.FirstPacketResult{Rounds: 3, Block: 1, RoundLoad: []string{"0.5 0.4 0.3", "9.0 2.0 1.0", "4.0 3.0 2.0"},
		MemBefore: 20 << 30, MemUp: 19 << 30, RoundTook: []time.Duration{300 * time.Millisecond, 900 * time.Millisecond, 400 * time.Millisecond},
		Points: []bench.FirstPacketPoint{
			pt(100, rounds(10, 20, 15), rounds(10, 20, 15)),
			pt(10000, rounds(10, 21, 18), rounds(11, 22, 15)),
		}}
	var out bytes.Buffer
	if err := printFirstPacket(&out, r, 3); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"3 rounds", "as each round began: 0.5 9.0 4.0", "(1024 MiB taken)", "took 1.6 s in all, 300ms to 900ms each",
		"15.0 (10.0-20.0)", // 100 Services: median of the round p50s and their range
		"18.0 (10.0-21.0)", // 10,000 Services, last
		// Pooled p50 15 -> 18: +20 %, a miss; round by round +0 %, +5 %, +20 %.
		"+20.0%", "+5.0% (+0.0% to +20.0%)",
		"+10.0% (+0.0% to +10.0%)", // middle: +10 %, +10 %, +0 %: the median of three is +10 %
		"within 10 %: NO",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	c := firstPacketChart(r)
	if w := c.Series[0].Whiskers; len(w) != 2 || w[1] != (bench.Whisker{X: 10000, Lo: 10, Hi: 21}) {
		t.Errorf("last Service's whiskers %v: want one per count, 10 to 21 µs at 10,000", w)
	}
	if _, err := c.SVG(); err != nil {
		t.Errorf("chart with whiskers: %v", err)
	}
}
