package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"
)

func us(n int) time.Duration { return time.Duration(n) * time.Microsecond }

func TestPercentileIsNearestRankAndLeavesTheInputAlone(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 1000; i++ {
		ds = append(ds, us(i))
	}
	rand.New(rand.NewSource(1)).Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	first := ds[0]
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, us(500)}, {99, us(990)}, {100, us(1000)}, {0.1, us(1)}, {0, us(1)}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%g of 1..1000 µs = %v, want %v", c.p, got, c.want)
		}
	}
	if ds[0] != first {
		t.Errorf("Percentile sorted its input in place")
	}
	small := []time.Duration{us(30), us(10), us(20)}
	if got := Percentile(small, 50); got != us(20) {
		t.Errorf("p50 of 10,20,30 µs = %v, want 20µs", got)
	}
	if got := Percentile(small, 99); got != us(30) {
		t.Errorf("p99 of 3 samples = %v, want the largest, 30µs", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestGrowthPer1000IsTheLeastSquaresSlope(t *testing.T) {
	// 20 µs plus 50 µs per 1,000 Services, exactly.
	var line []Point
	for _, n := range []float64{100, 1000, 5000, 10000} {
		line = append(line, Point{n, 20 + 0.05*n})
	}
	if g, err := GrowthPer1000(line); err != nil || math.Abs(g-50) > 1e-9 {
		t.Errorf("growth of y = 20 + 0.05x = %v, %v; want 50 per 1,000", g, err)
	}
	// Flat with a high middle point: the ends are equal and so is the fit.
	flat := []Point{{100, 30}, {1000, 30}, {5000, 90}, {10000, 30}}
	// mean x 4025; Σ(x-mx) = 0, so sxy = Σ(x-mx)·y = 60·(5000-4025).
	g, err := GrowthPer1000(flat)
	if err != nil {
		t.Fatal(err)
	}
	mx := 4025.0
	var sxx float64
	for _, p := range flat {
		sxx += (p.X - mx) * (p.X - mx)
	}
	if want := (5000 - mx) * 60 / sxx * 1000; math.Abs(g-want) > 1e-9 {
		t.Errorf("growth of the flat-with-a-bump points = %v, want %v (least squares, not the ends' difference)", g, want)
	}
	if _, err := GrowthPer1000([]Point{{100, 1}}); err == nil {
		t.Error("one point: no error")
	}
	if _, err := GrowthPer1000([]Point{{100, 1}, {100, 2}}); err == nil || !strings.Contains(err.Error(), "100 Services") {
		t.Errorf("two points at one count: error %v, want one naming the count", err)
	}
}

func TestRelativeChangeComparesTheSmallestAndLargestCount(t *testing.T) {
	pts := []Point{{10000, 22}, {100, 20}, {5000, 40}, {1000, 21}}
	if r, err := RelativeChange(pts); err != nil || math.Abs(r-0.1) > 1e-12 {
		t.Errorf("20 µs at 100 to 22 µs at 10,000 = %v, %v; want 0.1", r, err)
	}
	if _, err := RelativeChange([]Point{{100, 0}, {200, 1}}); err == nil {
		t.Error("a zero time at the smallest count: no error")
	}
}

// svgDoc is the part of the SVG a reader checks.
type svgDoc struct {
	Texts  []svgText  `xml:"text"`
	Groups []svgGroup `xml:"g"`
}

type svgText struct {
	Class string `xml:"class,attr"`
	Body  string `xml:",chardata"`
}

type svgGroup struct {
	Class     string `xml:"class,attr"`
	Name      string `xml:"data-name,attr"`
	Stroke    string `xml:"stroke,attr"`
	Polylines []struct {
		Points string `xml:"points,attr"`
		Dash   string `xml:"stroke-dasharray,attr"`
	} `xml:"polyline"`
	Circles []struct {
		X  string  `xml:"data-x,attr"`
		Y  string  `xml:"data-y,attr"`
		CY float64 `xml:"cy,attr"`
	} `xml:"circle"`
}

func TestChartSVGIsXMLWithEverySeriesPointAndAxisLabel(t *testing.T) {
	c := Chart{Title: "first packet <SYN → SYN-ACK>", XLabel: "Services", YLabel: "p50 setup (µs)", Series: []Series{
		{Name: "iptables, last", Points: []Point{{100, 40}, {1000, 80}, {5000, 300}, {10000, 610}}},
		{Name: "iptables, middle", Points: []Point{{10000, 320}, {100, 38}, {1000, 60}, {5000, 170}}},
		{Name: "nftables & last", Color: "#2ca02c", Dashed: true, Points: []Point{{100, 35}, {1000, 36}, {5000, 35}, {10000, 37}}},
	}}
	out, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	dec := xml.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, out)
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if cd, ok := tok.(xml.CharData); err != nil || !ok || strings.TrimSpace(string(cd)) != "" {
			t.Fatalf("content after the <svg> element: %v %v", tok, err)
		}
	}
	texts := map[string]string{}
	for _, x := range doc.Texts {
		texts[x.Class] += x.Body + "|"
	}
	for class, want := range map[string]string{"title": c.Title, "xlabel": "Services", "ylabel": "p50 setup (µs)"} {
		if texts[class] != want+"|" {
			t.Errorf("%s text = %q, want %q", class, texts[class], want)
		}
	}
	if !strings.Contains(texts["xticklabel"], "10,000|") || !strings.HasPrefix(texts["xticklabel"], "0|") {
		t.Errorf("x tick labels %q: want 0 to 10,000", texts["xticklabel"])
	}
	if !strings.Contains(texts["yticklabel"], "|") {
		t.Errorf("no y tick labels")
	}
	legend := strings.Split(strings.TrimSuffix(texts["legendlabel"], "|"), "|")
	var series []svgGroup
	for _, g := range doc.Groups {
		if g.Class == "series" {
			series = append(series, g)
		}
	}
	if len(series) != len(c.Series) || len(legend) != len(c.Series) {
		t.Fatalf("%d series groups and %d legend labels, want %d", len(series), len(legend), len(c.Series))
	}
	for i, g := range series {
		s := c.Series[i]
		if g.Name != s.Name || legend[i] != s.Name {
			t.Errorf("series %d named %q, legend %q; want %q", i, g.Name, legend[i], s.Name)
		}
		if len(g.Polylines) != 1 || len(strings.Fields(g.Polylines[0].Points)) != len(s.Points) {
			t.Errorf("series %q: polyline %+v, want one of %d points", s.Name, g.Polylines, len(s.Points))
		}
		if s.Color != "" && g.Stroke != s.Color {
			t.Errorf("series %q drawn in %q, want its colour %q", s.Name, g.Stroke, s.Color)
		}
		if (g.Polylines[0].Dash != "") != s.Dashed {
			t.Errorf("series %q dashed = %v, want %v", s.Name, g.Polylines[0].Dash != "", s.Dashed)
		}
		if len(g.Circles) != len(s.Points) {
			t.Fatalf("series %q: %d circles, want %d", s.Name, len(g.Circles), len(s.Points))
		}
		// Points come out in Service order, each with its value, and a
		// larger value is drawn higher (smaller y).
		prevX := -1.0
		got := map[string]string{}
		for _, ci := range g.Circles {
			x, _ := strconv.ParseFloat(ci.X, 64)
			if x <= prevX {
				t.Errorf("series %q: circles not in Service order: %v after %v", s.Name, x, prevX)
			}
			prevX = x
			got[ci.X] = ci.Y
		}
		for _, p := range s.Points {
			if got[strconv.FormatFloat(p.X, 'g', -1, 64)] != strconv.FormatFloat(p.Y, 'g', -1, 64) {
				t.Errorf("series %q: point (%v, %v) missing; have %v", s.Name, p.X, p.Y, got)
			}
		}
	}
	if a, b := series[0].Circles[0].CY, series[0].Circles[3].CY; !(b < a) {
		t.Errorf("610 µs drawn at y=%v, not above 40 µs at y=%v", b, a)
	}
}

func TestChartSVGDrawsEachWhiskerFromLowToHighAndFitsItOnTheAxis(t *testing.T) {
	c := Chart{Series: []Series{
		{Name: "plain", Points: []Point{{100, 10}, {10000, 12}}},
		{Name: "with bars", Points: []Point{{100, 10}, {10000, 12}}, Whiskers: []Whisker{{100, 9, 11}, {10000, 8, 31}}},
	}}
	out, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `xml:"data-name,attr"`
			Paths []struct {
				Class string `xml:"class,attr"`
				D     string `xml:"d,attr"`
				X     string `xml:"data-x,attr"`
				Lo    string `xml:"data-lo,attr"`
				Hi    string `xml:"data-hi,attr"`
			} `xml:"path"`
		} `xml:"g"`
		Texts []svgText `xml:"text"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	bars := map[string][]string{}
	for _, g := range doc.Groups {
		for _, p := range g.Paths {
			if p.Class == "whisker" {
				bars[g.Name] = append(bars[g.Name], p.X+":"+p.Lo+"-"+p.Hi)
				// Three strokes: a cap at the low end, the bar, a cap at
				// the high end, the high end drawn higher (smaller y).
				var x0, ylo, x1, x2, y2, y3, x3, yhi, x4 float64
				if n, err := fmt.Sscanf(p.D, "M%g,%gH%gM%g,%gV%gM%g,%gH%g", &x0, &ylo, &x1, &x2, &y2, &y3, &x3, &yhi, &x4); err != nil || n != 9 {
					t.Fatalf("whisker path %q: %v", p.D, err)
				}
				if !(yhi < ylo) || y2 != ylo || y3 != yhi || x2 != (x0+x1)/2 {
					t.Errorf("whisker %s: path %q does not run from its low end up to its high end", p.X, p.D)
				}
			}
		}
	}
	if len(bars["plain"]) != 0 || strings.Join(bars["with bars"], " ") != "100:9-11 10000:8-31" {
		t.Errorf("whiskers %v: want none on plain, 100:9-11 and 10000:8-31 on with bars", bars)
	}
	var yticks []string
	for _, x := range doc.Texts {
		if x.Class == "yticklabel" {
			yticks = append(yticks, x.Body)
		}
	}
	// The points alone would end the axis at 15; the highest whisker, 31,
	// takes it to 40.
	if len(yticks) == 0 || yticks[len(yticks)-1] != "40" {
		t.Errorf("y ticks %v: want the axis to reach 40, above the highest whisker (31)", yticks)
	}
}

func TestChartSVGRejectsWhatItCannotDraw(t *testing.T) {
	for name, c := range map[string]Chart{
		"no series":           {},
		"no points":           {Series: []Series{{Name: "a"}}},
		"NaN":                 {Series: []Series{{Name: "a", Points: []Point{{1, math.NaN()}}}}},
		"infinite":            {Series: []Series{{Name: "a", Points: []Point{{math.Inf(1), 1}}}}},
		"negative":            {Series: []Series{{Name: "a", Points: []Point{{1, -1}}}}},
		"bad colour":          {Series: []Series{{Name: "a", Color: `red"/><script`, Points: []Point{{1, 1}}}}},
		"whisker upside down": {Series: []Series{{Name: "a", Points: []Point{{1, 1}}, Whiskers: []Whisker{{1, 2, 1}}}}},
		"whisker NaN":         {Series: []Series{{Name: "a", Points: []Point{{1, 1}}, Whiskers: []Whisker{{1, math.NaN(), 1}}}}},
		"whisker negative":    {Series: []Series{{Name: "a", Points: []Point{{1, 1}}, Whiskers: []Whisker{{1, -1, 1}}}}},
	} {
		if _, err := c.SVG(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// All zeros still draws (an axis of 0 to 1), without dividing by zero.
	out, err := Chart{Series: []Series{{Name: "z", Points: []Point{{0, 0}}}}}.SVG()
	if err != nil || bytes.Contains(out, []byte("NaN")) {
		t.Errorf("all-zero chart: %v, NaN in output: %v", err, bytes.Contains(out, []byte("NaN")))
	}
}

func TestNiceAxisCoversTheMaximumWithRoundTicks(t *testing.T) {
	for _, c := range []struct{ max, step, top float64 }{
		{10000, 2000, 10000}, {610, 200, 800}, {37, 10, 40}, {0.9, 0.2, 1}, {1, 0.2, 1},
	} {
		step, top := niceAxis(c.max)
		if math.Abs(step-c.step) > 1e-9 || math.Abs(top-c.top) > 1e-9 {
			t.Errorf("niceAxis(%v) = %v, %v; want %v, %v", c.max, step, top, c.step, c.top)
		}
	}
	if got := formatTick(10000); got != "10,000" {
		t.Errorf("formatTick(10000) = %q", got)
	}
	if got := formatTick(3 * 0.2); got != "0.6" {
		t.Errorf("formatTick(0.6000000000000001) = %q", got)
	}
}
