package cluster

import (
	"slices"
	"strings"
	"testing"
)

// TestAddHintsMatchesUpstreamTopologyCache ports TestAddHints of kubernetes
// staging/src/k8s.io/endpointslice/topologycache/topologycache_test.go
// (commit 5c72df728125): the endpoints of the slices to create and update,
// in that order, with their zones and readiness, and the hints (or the
// TopologyAwareHintsDisabled message) upstream expects.
func TestAddHintsMatchesUpstreamTopologyCache(t *testing.T) {
	for _, c := range []struct {
		name   string
		ratios map[string]float64
		zones  []string
		ready  []bool
		hints  []string
		why    string
	}{
		{"empty", nil, nil, nil, []string{}, InsufficientNodeInfo},
		{"slice to create, no zone ratios", nil, []string{"zone-a"}, []bool{true}, []string{""}, InsufficientNodeInfo},
		{"slice to create with 2 endpoints, zone ratios require 3", map[string]float64{"zone-a": 0.3, "zone-b": 0.4, "zone-c": 0.3},
			[]string{"zone-a", "zone-b"}, []bool{true, true}, []string{"", ""}, InsufficientNumberOfEndpoints + " (2 endpoints, 3 zones)"},
		{"slice to create with 2 endpoints, zone ratios only require 2", map[string]float64{"zone-a": 0.45, "zone-b": 0.55},
			[]string{"zone-a", "zone-b"}, []bool{true, true}, []string{"zone-a", "zone-b"}, ""},
		{"slice to create with 2 ready, 1 unready, 1 unknown endpoints, zone ratios only require 2",
			map[string]float64{"zone-a": 0.45, "zone-b": 0.55},
			[]string{"zone-a", "zone-b", "zone-b", "zone-b"}, []bool{true, true, false, false}, []string{"zone-a", "zone-b", "", ""}, ""},
		{"slices to create and update within 3 zone threshold", map[string]float64{"zone-a": 0.35, "zone-b": 0.35, "zone-c": 0.30},
			[]string{"zone-a", "zone-b", "zone-c", "zone-c", "zone-a", "zone-a", "zone-a", "zone-b", "zone-c", "zone-a"},
			[]bool{true, true, true, true, true, true, true, true, true, true},
			[]string{"zone-b", "zone-b", "zone-c", "zone-c", "zone-a", "zone-a", "zone-a", "zone-b", "zone-c", "zone-a"}, ""},
		// The refusals of getAllocations and AddHints upstream has no case for here.
		{"nodes in one zone", map[string]float64{"zone-a": 1}, []string{"zone-a"}, []bool{true}, []string{""}, NodesReadyInOneZoneOnly},
		{"minimum allocations exceed the endpoints", map[string]float64{"zone-a": 0.9, "zone-b": 0.05, "zone-c": 0.05},
			[]string{"zone-a", "zone-a", "zone-b"}, []bool{true, true, true}, []string{"", "", ""},
			MinAllocationExceedsOverloadThreshold + " (3 endpoints, 3 zones)"},
		{"an endpoint without a zone", map[string]float64{"zone-a": 0.5, "zone-b": 0.5},
			[]string{"zone-a", ""}, []bool{true, true}, []string{"", ""}, NoZoneSpecified},
	} {
		t.Run(c.name, func(t *testing.T) {
			hints, why := addHints(c.ratios, c.zones, c.ready)
			if !slices.Equal(hints, c.hints) || why != c.why {
				t.Errorf("hints %q, event %q; upstream gives %q, %q", hints, why, c.hints, c.why)
			}
		})
	}
}

// TestAZLocalHintsAndKubeProxyChoices pins what az-local's walks rest on:
// the hints each Service's endpoints get and which endpoints node-a1's
// kube-proxy uses for the client pod's connections.
func TestAZLocalHintsAndKubeProxyChoices(t *testing.T) {
	top := load(t, "az-local")
	want := map[string]struct {
		hints, disabled string
		picks           string
	}{
		"web":         {"", "", "web-a2,web-b1,web-c1"},
		"web-close":   {"us-east-1a,us-east-1b,us-east-1c", "", "web-a2"},
		"web-auto":    {"us-east-1a,us-east-1b,us-east-1c", "", "web-a2"},
		"thin-auto":   {"", InsufficientNumberOfEndpoints + " (2 endpoints, 3 zones)", "thin-b1,thin-c1"},
		"thin-close":  {"us-east-1b,us-east-1c", "", "thin-b1,thin-c1"},
		"cache":       {"", "", "cache-a1,cache-b1,cache-c1"},
		"cache-local": {"", "", "cache-a1"},
	}
	seen := 0
	for _, sp := range Endpoints(top) {
		w, ok := want[sp.Service.Name]
		if !ok {
			continue
		}
		seen++
		var hints []string
		for _, e := range sp.Endpoints {
			if e.ZoneHint != "" {
				hints = append(hints, e.ZoneHint)
			}
		}
		eps, verdict := PodTraffic(top, sp, "node-a1")
		var picks []string
		for _, e := range eps {
			picks = append(picks, shortPod(e))
		}
		if got := strings.Join(hints, ","); got != w.hints || sp.HintsDisabled != w.disabled {
			t.Errorf("%s: hints %q (disabled: %q), want %q (%q)", sp.Service.Name, got, sp.HintsDisabled, w.hints, w.disabled)
		}
		if got := strings.Join(picks, ","); got != w.picks || verdict != "" {
			t.Errorf("%s: node-a1 picks %q (verdict %q), want %q", sp.Service.Name, got, verdict, w.picks)
		}
	}
	if seen != len(want) {
		t.Fatalf("found %d of the %d Services", seen, len(want))
	}
}

// shortPod names a Deployment pod by its app and node ("web-a2") so the
// expectations do not depend on generated pod names.
func shortPod(e Endpoint) string {
	app, _, _ := strings.Cut(e.Pod, "-")
	return app + "-" + strings.TrimPrefix(e.Node, "node-")
}

func TestPodTrafficDropsWithInternalPolicyLocalAndNoLocalEndpoint(t *testing.T) {
	top := load(t, "az-local")
	for _, sp := range Endpoints(top) {
		if sp.Service.Name != "cache-local" {
			continue
		}
		if eps, verdict := PodTraffic(top, sp, "node-a2"); len(eps) != 0 || verdict != "DROP" {
			t.Errorf("node-a2 has no cache pod: got %v, %q; kube-proxy drops", eps, verdict)
		}
		return
	}
	t.Fatal("no cache-local Service")
}

func TestNodeCPUAndZoneComeFromInstanceTypeAndPrimarySubnet(t *testing.T) {
	top := load(t, "az-local")
	if NodeZone(top, "node-b1") != "us-east-1b" || NodeCPU(top, "node-b1") != 4000 || NodeCPU(top, "node-a1") != 2000 {
		t.Errorf("node-b1: zone %q cpu %d; node-a1 cpu %d", NodeZone(top, "node-b1"), NodeCPU(top, "node-b1"), NodeCPU(top, "node-a1"))
	}
	r := zoneRatios(top)
	for _, z := range []string{"us-east-1a", "us-east-1b", "us-east-1c"} {
		if r[z] < 0.333 || r[z] > 0.334 {
			t.Errorf("zone ratios %v, want a third each", r)
		}
	}
}
