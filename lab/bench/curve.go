package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile is the nearest-rank percentile of ds (p in (0, 100]): the
// smallest sample at least p percent of the samples are at or below. It
// is 0 for no samples. ds is not changed.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Point is one measurement of a curve: X Services, Y a time in µs.
type Point struct{ X, Y float64 }

// GrowthPer1000 is the least-squares slope of pts, in Y per 1,000 X: how
// much the first packet's setup time grows per 1,000 more Services. A fit
// over every count, not the two ends, so one noisy count moves it less.
// It needs two distinct X values.
func GrowthPer1000(pts []Point) (float64, error) {
	if len(pts) < 2 {
		return 0, fmt.Errorf("growth per 1,000: %d points; need at least 2", len(pts))
	}
	var mx, my float64
	for _, p := range pts {
		mx += p.X
		my += p.Y
	}
	mx /= float64(len(pts))
	my /= float64(len(pts))
	var sxy, sxx float64
	for _, p := range pts {
		sxy += (p.X - mx) * (p.Y - my)
		sxx += (p.X - mx) * (p.X - mx)
	}
	if sxx == 0 {
		return 0, fmt.Errorf("growth per 1,000: every point is at %g Services; need two counts", pts[0].X)
	}
	return sxy / sxx * 1000, nil
}

// RelativeChange is (last - first) / first of the points with the smallest
// and the largest X: 0.1 is 10 % slower at the largest count.
func RelativeChange(pts []Point) (float64, error) {
	if len(pts) < 2 {
		return 0, fmt.Errorf("relative change: %d points; need at least 2", len(pts))
	}
	lo, hi := pts[0], pts[0]
	for _, p := range pts[1:] {
		if p.X < lo.X {
			lo = p
		}
		if p.X > hi.X {
			hi = p
		}
	}
	if lo.X == hi.X || lo.Y <= 0 {
		return 0, fmt.Errorf("relative change: need two counts and a positive time at %g Services", lo.X)
	}
	return (hi.Y - lo.Y) / lo.Y, nil
}

// Series is one line of a Chart. Color is an SVG colour; empty takes the
// next of a fixed palette.
type Series struct {
	Name   string
	Color  string
	Dashed bool
	Points []Point
	// Whiskers, if any, are drawn as vertical bars: a range of Y at an X,
	// such as the least and greatest per-round p50 of a point.
	Whiskers []Whisker
}

// Whisker is a range of Y, Lo to Hi, at X.
type Whisker struct{ X, Lo, Hi float64 }

// Chart is a line plot with linear axes from 0.
type Chart struct {
	Title, Subtitle, XLabel, YLabel string
	Series                          []Series
}

// Chart geometry, in SVG user units.
const (
	svgW, svgH                       = 820, 500
	plotL, plotR, plotT, plotB       = 80, 790, 70, 440
	legendX, legendY, legendLineStep = 96, 86, 18
)

// seriesColors are told apart in print and by most colour-blind readers.
var seriesColors = []string{"#d62728", "#ff7f0e", "#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f"}

// SVG writes c as a standalone SVG document: axes with ticks and labels, one
// polyline and one circle per point for each series (and a bar per whisker,
// class "whisker"), and a legend. Each series is a <g class="series"> with
// its name in data-name, so tests and scripts can read the points back. Every value must be finite and at
// least 0.
func (c Chart) SVG() ([]byte, error) {
	if len(c.Series) == 0 {
		return nil, errors.New("chart: no series")
	}
	var xmax, ymax float64
	for i, s := range c.Series {
		if len(s.Points) == 0 {
			return nil, fmt.Errorf("chart: series %d (%q) has no points", i+1, s.Name)
		}
		if strings.ContainsAny(s.Color, `"<>&`) {
			return nil, fmt.Errorf("chart: series %q: colour %q is not an SVG colour", s.Name, s.Color)
		}
		for j, p := range s.Points {
			if math.IsNaN(p.X) || math.IsInf(p.X, 0) || math.IsNaN(p.Y) || math.IsInf(p.Y, 0) || p.X < 0 || p.Y < 0 {
				return nil, fmt.Errorf("chart: series %q point %d (%g, %g): need finite values >= 0", s.Name, j+1, p.X, p.Y)
			}
			xmax, ymax = max(xmax, p.X), max(ymax, p.Y)
		}
		for j, w := range s.Whiskers {
			if !finite(w.X, w.Lo, w.Hi) || w.X < 0 || w.Lo < 0 || w.Hi < w.Lo {
				return nil, fmt.Errorf("chart: series %q whisker %d (%g: %g to %g): need finite values >= 0, low to high", s.Name, j+1, w.X, w.Lo, w.Hi)
			}
			xmax, ymax = max(xmax, w.X), max(ymax, w.Hi)
		}
	}
	xstep, xtop := niceAxis(xmax)
	ystep, ytop := niceAxis(ymax)
	px := func(x float64) float64 { return plotL + x/xtop*(plotR-plotL) }
	py := func(y float64) float64 { return plotB - y/ytop*(plotB-plotT) }

	var b bytes.Buffer
	text := func(x, y float64, anchor, class, s string, extra string) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s" class="%s"%s>`, x, y, anchor, class, extra)
		xml.EscapeText(&b, []byte(s)) //nolint:errcheck // a bytes.Buffer does not fail
		b.WriteString("</text>\n")
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	text(svgW/2, 24, "middle", "title", c.Title, ` font-size="16" font-weight="bold"`)
	if c.Subtitle != "" {
		text(svgW/2, 44, "middle", "subtitle", c.Subtitle, ` fill="#444"`)
	}
	b.WriteString(`<g class="axes" stroke="#888" stroke-width="1">` + "\n")
	xticks, yticks := ticks(xstep, xtop), ticks(ystep, ytop)
	for _, x := range xticks {
		fmt.Fprintf(&b, `<line class="xtick" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`+"\n", px(x), plotT, px(x), plotB)
	}
	for _, y := range yticks {
		fmt.Fprintf(&b, `<line class="ytick" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`+"\n", plotL, py(y), plotR, py(y))
	}
	fmt.Fprintf(&b, `<line class="xaxis" x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", plotL, plotB, plotR, plotB)
	fmt.Fprintf(&b, `<line class="yaxis" x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", plotL, plotB, plotL, plotT)
	b.WriteString("</g>\n")
	for _, x := range xticks {
		text(px(x), plotB+18, "middle", "xticklabel", formatTick(x), "")
	}
	for _, y := range yticks {
		text(plotL-8, py(y)+4, "end", "yticklabel", formatTick(y), "")
	}
	text((plotL+plotR)/2, plotB+44, "middle", "xlabel", c.XLabel, "")
	text(20, (plotT+plotB)/2, "middle", "ylabel", c.YLabel, fmt.Sprintf(` transform="rotate(-90 20 %d)"`, (plotT+plotB)/2))

	for i, s := range c.Series {
		color := seriesColors[i%len(seriesColors)]
		if s.Color != "" {
			color = s.Color
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		pts := slices.Clone(s.Points)
		slices.SortFunc(pts, func(a, b Point) int { return cmpFloat(a.X, b.X) })
		b.WriteString(`<g class="series" data-name="`)
		xml.EscapeText(&b, []byte(s.Name)) //nolint:errcheck
		fmt.Fprintf(&b, `" stroke="%s" fill="%s">`+"\n", color, color)
		b.WriteString(`<polyline fill="none" stroke-width="2"` + dash + ` points="`)
		for j, p := range pts {
			if j > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%.1f,%.1f", px(p.X), py(p.Y))
		}
		b.WriteString(`"/>` + "\n")
		for _, w := range s.Whiskers {
			x := px(w.X)
			fmt.Fprintf(&b, `<path class="whisker" fill="none" stroke-width="1" d="M%.1f,%.1fH%.1fM%.1f,%.1fV%.1fM%.1f,%.1fH%.1f" data-x="%s" data-lo="%s" data-hi="%s"/>`+"\n",
				x-4, py(w.Lo), x+4, x, py(w.Lo), py(w.Hi), x-4, py(w.Hi), x+4,
				strconv.FormatFloat(w.X, 'g', -1, 64), strconv.FormatFloat(w.Lo, 'g', -1, 64), strconv.FormatFloat(w.Hi, 'g', -1, 64))
		}
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" data-x="%s" data-y="%s"/>`+"\n",
				px(p.X), py(p.Y), strconv.FormatFloat(p.X, 'g', -1, 64), strconv.FormatFloat(p.Y, 'g', -1, 64))
		}
		b.WriteString("</g>\n")
		ly := float64(legendY + i*legendLineStep)
		fmt.Fprintf(&b, `<line class="legend" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n",
			legendX, ly, legendX+26, ly, color, dash)
		text(legendX+32, ly+4, "start", "legendlabel", s.Name, "")
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

func finite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// niceAxis picks a tick step of 1, 2 or 5 times a power of ten giving about
// five ticks up to max, and the top of the axis (a multiple of the step at
// or above max). A zero max gets an axis of 0 to 1.
func niceAxis(maxV float64) (step, top float64) {
	if maxV <= 0 {
		return 0.2, 1
	}
	raw := maxV / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = mag * 10
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	return step, math.Ceil(maxV/step-1e-9) * step
}

// ticks are 0, step, 2 step, ... top, each a multiple (not a running sum,
// which drifts) of step.
func ticks(step, top float64) []float64 {
	var out []float64
	for k := 0; float64(k)*step <= top+step/2; k++ {
		out = append(out, float64(k)*step)
	}
	return out
}

// formatTick writes a tick value without float noise: 1000 as "1,000".
func formatTick(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		s := strconv.FormatInt(int64(v), 10)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
