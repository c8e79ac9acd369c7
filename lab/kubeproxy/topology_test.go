package kubeproxy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// topoEP is one endpoint of a ported upstream case: "ip:port", zone hints
// (comma-separated), and its conditions.
type topoEP struct {
	ep                          string
	hints                       string
	ready, serving, term, local bool
}

func (e topoEP) endpoint() Endpoint {
	host, port, _ := strings.Cut(e.ep, ":")
	var p int32
	fmt.Sscan(port, &p)
	return Endpoint{IP: addr(host), Port: p, Ready: e.ready, Serving: e.serving || e.ready, Terminating: e.term,
		Local: e.local, ZoneHints: e.hints}
}

// categorizeCases are TestCategorizeEndpoints of kubernetes
// pkg/proxy/topology_test.go (stored at commit 02756999a07f), with the
// expectations of the current CategorizeEndpoints (pkg/proxy/topology.go at
// commit 008b3652959c): kube-proxy no longer reads the topology annotation
// (the EndpointSlice controller does), so upstream's cases that differ only
// in the annotation's value are left out, and the feature-gate-off cases
// (TopologyAwareHints, ProxyTerminatingEndpoints: both GA) too. nil for
// cluster or local means the Service does not use that kind of endpoint.
var categorizeCases = []struct {
	name                  string
	zone                  string
	internalLocal, extLoc bool
	nodePort              int32
	eps                   []topoEP
	cluster, local, all   []string
	onlyRemote            bool
}{{
	name: "hints, node in zone-a: only zone-a endpoints", zone: "zone-a",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, false}, {"10.1.2.4:80", "zone-b", true, false, false, false}, {"10.1.2.5:80", "zone-c", true, false, false, false}, {"10.1.2.6:80", "zone-a", true, false, false, false}},
	cluster: []string{"10.1.2.3:80", "10.1.2.6:80"},
}, {
	name: "externalTrafficPolicy: Local, topology ignored for Local endpoints", zone: "zone-a", extLoc: true, nodePort: 8080,
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, true}, {"10.1.2.4:80", "zone-b", true, false, false, true}, {"10.1.2.5:80", "zone-c", true, false, false, false}, {"10.1.2.6:80", "zone-a", true, false, false, false}},
	cluster: []string{"10.1.2.3:80", "10.1.2.6:80"}, local: []string{"10.1.2.3:80", "10.1.2.4:80"},
	all: []string{"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
}, {
	name: "internalTrafficPolicy: Local, topology ignored for Local endpoints", zone: "zone-a", internalLocal: true, nodePort: 8080,
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, true}, {"10.1.2.4:80", "zone-b", true, false, false, true}, {"10.1.2.5:80", "zone-c", true, false, false, false}, {"10.1.2.6:80", "zone-a", true, false, false, false}},
	cluster: []string{"10.1.2.3:80", "10.1.2.6:80"}, local: []string{"10.1.2.3:80", "10.1.2.4:80"},
	all: []string{"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
}, {
	name: "empty node labels", zone: "",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, false}},
	cluster: []string{"10.1.2.3:80"},
}, {
	name: "node in different zone, no endpoint filtering", zone: "zone-b",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, false}},
	cluster: []string{"10.1.2.3:80"},
}, {
	name: "unready endpoint", zone: "zone-a",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, false}, {"10.1.2.4:80", "zone-b", true, false, false, false}, {"10.1.2.5:80", "zone-c", true, false, false, false}, {"10.1.2.6:80", "zone-a", false, false, false, false}},
	cluster: []string{"10.1.2.3:80"},
}, {
	name: "only unready endpoints in same zone (should not filter)", zone: "zone-a",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", false, false, false, false}, {"10.1.2.4:80", "zone-b", true, false, false, false}, {"10.1.2.5:80", "zone-c", true, false, false, false}, {"10.1.2.6:80", "zone-a", false, false, false, false}},
	cluster: []string{"10.1.2.4:80", "10.1.2.5:80"},
}, {
	name: "missing hints, no filtering applied", zone: "zone-a",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a", true, false, false, false}, {"10.1.2.4:80", "zone-b", true, false, false, false}, {"10.1.2.5:80", "", true, false, false, false}, {"10.1.2.6:80", "zone-a", true, false, false, false}},
	cluster: []string{"10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"},
}, {
	name: "multiple hints per endpoint, filtering includes any endpoint with zone included", zone: "zone-c",
	eps:     []topoEP{{"10.1.2.3:80", "zone-a,zone-b,zone-c", true, false, false, false}, {"10.1.2.4:80", "zone-b,zone-c", true, false, false, false}, {"10.1.2.5:80", "zone-b,zone-d", true, false, false, false}, {"10.1.2.6:80", "zone-c", true, false, false, false}},
	cluster: []string{"10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"},
}, {
	name: "conflicting topology and localness require merging allEndpoints", zone: "zone-a", extLoc: true, nodePort: 8080,
	eps:     []topoEP{{"10.0.0.0:80", "zone-a", true, false, false, true}, {"10.0.0.1:80", "zone-b", true, false, false, true}, {"10.0.0.2:80", "zone-a", true, false, false, false}, {"10.0.0.3:80", "zone-b", true, false, false, false}},
	cluster: []string{"10.0.0.0:80", "10.0.0.2:80"}, local: []string{"10.0.0.0:80", "10.0.0.1:80"},
	all: []string{"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80"},
}, {
	name: "internalTrafficPolicy: Local, with empty endpoints", internalLocal: true,
	local: []string{},
}, {
	name: "internalTrafficPolicy: Local, but all endpoints are remote", internalLocal: true,
	eps:   []topoEP{{"10.0.0.0:80", "", true, false, false, false}, {"10.0.0.1:80", "", true, false, false, false}},
	local: []string{}, onlyRemote: true,
}, {
	name: "internalTrafficPolicy: Local, all endpoints are local", internalLocal: true,
	eps:   []topoEP{{"10.0.0.0:80", "", true, false, false, true}, {"10.0.0.1:80", "", true, false, false, true}},
	local: []string{"10.0.0.0:80", "10.0.0.1:80"},
}, {
	name: "internalTrafficPolicy: Local, some endpoints are local", internalLocal: true,
	eps:   []topoEP{{"10.0.0.0:80", "", true, false, false, true}, {"10.0.0.1:80", "", true, false, false, false}},
	local: []string{"10.0.0.0:80"},
}, {
	name:    "Cluster traffic policy, endpoints not Ready",
	eps:     []topoEP{{"10.0.0.0:80", "", false, false, false, false}, {"10.0.0.1:80", "", false, false, false, false}},
	cluster: []string{},
}, {
	name:    "Cluster traffic policy, some endpoints are Ready",
	eps:     []topoEP{{"10.0.0.0:80", "", false, false, false, false}, {"10.0.0.1:80", "", true, false, false, false}},
	cluster: []string{"10.0.0.1:80"},
}, {
	name:    "Cluster traffic policy, all endpoints are terminating",
	eps:     []topoEP{{"10.0.0.0:80", "", false, true, true, true}, {"10.0.0.1:80", "", false, true, true, false}},
	cluster: []string{"10.0.0.0:80", "10.0.0.1:80"},
}, {
	name: "iTP: Local, eTP: Cluster, some endpoints local", internalLocal: true, nodePort: 8080,
	eps:     []topoEP{{"10.0.0.0:80", "", true, false, false, true}, {"10.0.0.1:80", "", true, false, false, false}},
	cluster: []string{"10.0.0.0:80", "10.0.0.1:80"}, local: []string{"10.0.0.0:80"}, all: []string{"10.0.0.0:80", "10.0.0.1:80"},
}, {
	name: "iTP: Cluster, eTP: Local, some endpoints local", extLoc: true, nodePort: 8080,
	eps:     []topoEP{{"10.0.0.0:80", "", true, false, false, true}, {"10.0.0.1:80", "", true, false, false, false}},
	cluster: []string{"10.0.0.0:80", "10.0.0.1:80"}, local: []string{"10.0.0.0:80"}, all: []string{"10.0.0.0:80", "10.0.0.1:80"},
}, {
	name: "iTP: Local, eTP: Local, all endpoints remote", internalLocal: true, extLoc: true, nodePort: 8080,
	eps:     []topoEP{{"10.0.0.0:80", "", true, false, false, false}, {"10.0.0.1:80", "", true, false, false, false}},
	cluster: []string{"10.0.0.0:80", "10.0.0.1:80"}, local: []string{}, all: []string{"10.0.0.0:80", "10.0.0.1:80"},
}, {
	name: "iTP: Local, eTP: Local, all endpoints remote and terminating", internalLocal: true, extLoc: true, nodePort: 8080,
	eps:     []topoEP{{"10.0.0.0:80", "", false, true, true, false}, {"10.0.0.1:80", "", false, true, true, false}},
	cluster: []string{"10.0.0.0:80", "10.0.0.1:80"}, local: []string{}, all: []string{"10.0.0.0:80", "10.0.0.1:80"},
	onlyRemote: true,
}, {
	name: "iTP: Cluster, eTP: Local, with terminating endpoints", extLoc: true, nodePort: 8080,
	eps: []topoEP{{"10.0.0.0:80", "", true, false, false, false}, {"10.0.0.1:80", "", false, false, false, true},
		{"10.0.0.2:80", "", false, true, true, true}, {"10.0.0.3:80", "", false, true, true, false}},
	cluster: []string{"10.0.0.0:80"}, local: []string{"10.0.0.2:80"}, all: []string{"10.0.0.0:80", "10.0.0.2:80"},
}, {
	name: "externalTrafficPolicy ignored if not externally accessible", extLoc: true,
	eps:     []topoEP{{"10.0.0.0:80", "", true, false, false, false}, {"10.0.0.1:80", "", true, false, false, true}},
	cluster: []string{"10.0.0.0:80", "10.0.0.1:80"}, all: []string{"10.0.0.0:80", "10.0.0.1:80"},
}, {
	name: "no cluster endpoints for iTP:Local internal-only service", internalLocal: true,
	eps:   []topoEP{{"10.0.0.0:80", "", true, false, false, false}, {"10.0.0.1:80", "", true, false, false, true}},
	local: []string{"10.0.0.1:80"}, all: []string{"10.0.0.1:80"},
}}

func epStrings(eps []*epInfo) []string {
	out := []string{}
	for _, e := range eps {
		out = append(out, e.str)
	}
	slices.Sort(out)
	return out
}

func TestCategorizeMatchesUpstreamTopologyCases(t *testing.T) {
	for _, tc := range categorizeCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := goldenConfig()
			cfg.Zone = tc.zone
			s, err := resolve(cfg)
			if err != nil {
				t.Fatal(err)
			}
			in := ServicePort{Namespace: "ns1", Name: "svc1", Protocol: "TCP", ClusterIP: addr("172.30.1.1"), Port: 80,
				NodePort: tc.nodePort, InternalPolicyLocal: tc.internalLocal, ExternalPolicyLocal: tc.extLoc}
			for _, e := range tc.eps {
				in.Endpoints = append(in.Endpoints, e.endpoint())
			}
			sp, err := prepareOne(s, &in)
			if err != nil {
				t.Fatal(err)
			}
			c := sp.plan.c
			if tc.cluster == nil && sp.usesClusterEndpoints() {
				t.Errorf("the Service uses Cluster endpoints (%v); upstream expects none", epStrings(c.cluster))
			} else if tc.cluster != nil && !slices.Equal(epStrings(c.cluster), tc.cluster) {
				t.Errorf("cluster endpoints %v, upstream expects %v", epStrings(c.cluster), tc.cluster)
			}
			if tc.local == nil && sp.usesLocalEndpoints() {
				t.Errorf("the Service uses Local endpoints (%v); upstream expects none", epStrings(c.local))
			} else if tc.local != nil && !slices.Equal(epStrings(c.local), tc.local) {
				t.Errorf("local endpoints %v, upstream expects %v", epStrings(c.local), tc.local)
			}
			all := tc.all
			switch {
			case tc.cluster != nil && tc.local == nil:
				all = tc.cluster
			case tc.local != nil && tc.cluster == nil:
				all = tc.local
			}
			if all == nil {
				all = []string{}
			}
			if !slices.Equal(epStrings(c.all), all) {
				t.Errorf("all reachable endpoints %v, upstream expects %v", epStrings(c.all), all)
			}
			if want := len(all) > 0 || tc.onlyRemote; c.hasAny != want {
				t.Errorf("hasAny %v, upstream expects %v", c.hasAny, want)
			}
		})
	}
}

// traceIPTables follows a pod's packet to cip:port through a rendered
// iptables-restore payload, as upstream's runPacketFlowTests does: "DROP"
// or "REJECT" from the filter table, else the sorted DNAT destinations of
// every KUBE-SEP chain reachable from the matching KUBE-SERVICES rule.
func traceIPTables(t *testing.T, payload, cip string, port int) string {
	t.Helper()
	match := fmt.Sprintf("-d %s --dport %d -j ", cip, port)
	table := ""
	chains := map[string][]string{}
	var start string
	for _, l := range strings.Split(payload, "\n") {
		if strings.HasPrefix(l, "*") {
			table = l[1:]
			continue
		}
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		f := strings.Fields(l)
		if table == "nat" {
			chains[f[1]] = append(chains[f[1]], l)
		}
		if f[1] == "KUBE-SERVICES" && strings.Contains(l, match) {
			target := f[len(f)-1]
			if table == "filter" && (target == "DROP" || target == "REJECT") {
				return target
			}
			if table == "nat" {
				start = target
			}
		}
	}
	if start == "" {
		return "no rule"
	}
	dnat := regexp.MustCompile(`--to-destination (\S+)`)
	var out []string
	seen := map[string]bool{}
	var walk func(chain string)
	walk = func(chain string) {
		if seen[chain] {
			return
		}
		seen[chain] = true
		for _, l := range chains[chain] {
			if m := dnat.FindStringSubmatch(l); m != nil {
				out = append(out, m[1])
			}
			f := strings.Fields(l)
			if target := f[len(f)-1]; strings.HasPrefix(target, "KUBE-SEP-") || strings.HasPrefix(target, "KUBE-SVC-") ||
				strings.HasPrefix(target, "KUBE-SVL-") {
				walk(target)
			}
		}
	}
	walk(start)
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// traceNFT is traceIPTables for an nftables dump: the service-ips element
// for cip . tcp . port, else the no-endpoint-services verdict, then every
// endpoint chain reachable by goto and each one's "dnat to".
func traceNFT(t *testing.T, dump, cip string, port int) string {
	t.Helper()
	key := fmt.Sprintf("{ %s . tcp . %d ", cip, port)
	rules := map[string][]string{}
	var start string
	for _, l := range strings.Split(dump, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		switch {
		case f[1] == "rule":
			rules[f[4]] = append(rules[f[4]], l)
		case f[1] == "element" && strings.Contains(l, key):
			verdict := l[strings.LastIndex(l, ": ")+2 : len(l)-2]
			switch {
			case f[4] == "service-ips":
				start = strings.TrimPrefix(verdict, "goto ")
			case f[4] == "no-endpoint-services" && verdict == "drop":
				return "DROP"
			case f[4] == "no-endpoint-services" && verdict == "goto reject-chain":
				return "REJECT"
			}
		}
	}
	if start == "" {
		return "no rule"
	}
	gotoRE := regexp.MustCompile(`goto (\S+?)[ }]|goto (\S+)$`)
	dnat := regexp.MustCompile(`dnat to (\S+)`)
	var out []string
	seen := map[string]bool{}
	var walk func(chain string)
	walk = func(chain string) {
		if seen[chain] {
			return
		}
		seen[chain] = true
		for _, l := range rules[chain] {
			if m := dnat.FindStringSubmatch(l); m != nil {
				out = append(out, m[1])
			}
			for _, m := range gotoRE.FindAllStringSubmatch(l, -1) {
				walk(m[1] + m[2])
			}
		}
	}
	walk(start)
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// flowBoth renders one Service for a node in both modes and traces a pod's
// packet to its ClusterIP through each.
func flowBoth(t *testing.T, zone string, sp ServicePort) (iptables, nft string) {
	t.Helper()
	cfg := goldenConfig()
	cfg.Zone = zone
	payload, err := Render(cfg, []ServicePort{sp})
	if err != nil {
		t.Fatal(err)
	}
	ncfg := nftGoldenConfig()
	ncfg.Zone = zone
	dump, err := RenderNFT(ncfg, []ServicePort{sp})
	if err != nil {
		t.Fatal(err)
	}
	cip := sp.ClusterIP.String()
	return traceIPTables(t, string(payload), cip, int(sp.Port)), traceNFT(t, dump, cip, int(sp.Port))
}

// TestInternalTrafficPolicyFlowsMatchUpstream ports TestInternalTrafficPolicy
// of kubernetes pkg/proxy/nftables/proxier_test.go (commit 030880a5dc54):
// Service ns1/svc1 at 172.30.1.1:80 with an unnamed port, three ready
// endpoints, a pod's packet from 10.0.0.2; and the REJECT once the
// endpoints are deleted. Both renderers must give upstream's output.
func TestInternalTrafficPolicyFlowsMatchUpstream(t *testing.T) {
	type ep struct {
		ip    string
		local bool
	}
	for _, tc := range []struct {
		name     string
		local    bool
		eps      []ep
		expected string
	}{
		{"internalTrafficPolicy is cluster", false, []ep{{"10.0.1.1", true}, {"10.0.1.2", false}, {"10.0.1.3", false}},
			"10.0.1.1:80, 10.0.1.2:80, 10.0.1.3:80"},
		{"internalTrafficPolicy is local and there is one local endpoint", true,
			[]ep{{"10.0.1.1", true}, {"10.0.1.2", false}, {"10.0.1.3", false}}, "10.0.1.1:80"},
		{"internalTrafficPolicy is local and there are multiple local endpoints", true,
			[]ep{{"10.0.1.1", true}, {"10.0.1.2", true}, {"10.0.1.3", false}}, "10.0.1.1:80, 10.0.1.2:80"},
		{"internalTrafficPolicy is local and there are no local endpoints", true,
			[]ep{{"10.0.1.1", false}, {"10.0.1.2", false}, {"10.0.1.3", false}}, "DROP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := ServicePort{Namespace: "ns1", Name: "svc1", Protocol: "TCP", ClusterIP: addr("172.30.1.1"), Port: 80,
				InternalPolicyLocal: tc.local}
			for _, e := range tc.eps {
				x := ready(e.ip, 80)
				x.Local = e.local
				sp.Endpoints = append(sp.Endpoints, x)
			}
			ipt, nft := flowBoth(t, "", sp)
			if ipt != tc.expected || nft != tc.expected {
				t.Errorf("pod to ClusterIP: iptables %q, nftables %q; upstream expects %q", ipt, nft, tc.expected)
			}
			sp.Endpoints = nil
			if ipt, nft := flowBoth(t, "", sp); ipt != "REJECT" || nft != "REJECT" {
				t.Errorf("endpoints deleted: iptables %q, nftables %q; upstream expects REJECT", ipt, nft)
			}
		})
	}
}

// TestTopologyHintsFilterBothRenderersLikeUpstream renders the hinted cases
// of categorizeCases (upstream's expected Cluster endpoints) in both modes:
// a pod's packet to the ClusterIP reaches exactly those endpoints.
func TestTopologyHintsFilterBothRenderersLikeUpstream(t *testing.T) {
	n := 0
	for _, tc := range categorizeCases {
		if tc.internalLocal || tc.extLoc || tc.cluster == nil || len(tc.cluster) == 0 || tc.eps[0].hints == "" {
			continue
		}
		n++
		t.Run(tc.name, func(t *testing.T) {
			sp := ServicePort{Namespace: "ns1", Name: "svc1", Protocol: "TCP", ClusterIP: addr("172.30.1.1"), Port: 80}
			for _, e := range tc.eps {
				sp.Endpoints = append(sp.Endpoints, e.endpoint())
			}
			want := strings.Join(tc.cluster, ", ")
			if ipt, nft := flowBoth(t, tc.zone, sp); ipt != want || nft != want {
				t.Errorf("pod to ClusterIP from a node in %q: iptables %q, nftables %q; upstream expects %q", tc.zone, ipt, nft, want)
			}
		})
	}
	if n < 6 {
		t.Fatalf("only %d hinted cases rendered", n)
	}
}

// TestHintedServiceRendersKubeProxysProbabilities pins the bytes: two
// same-zone endpoints of four give a KUBE-SVC chain of two endpoints, the
// first at probability 0.5000000000, as kube-proxy writes it.
func TestHintedServiceRendersKubeProxysProbabilities(t *testing.T) {
	sp := clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80)
	for i, z := range []string{"zone-a", "zone-b", "zone-c", "zone-a"} {
		e := ready(fmt.Sprintf("10.180.0.%d", i+1), 80)
		e.ZoneHints = z
		sp.Endpoints = append(sp.Endpoints, e)
	}
	cfg := goldenConfig()
	cfg.Zone = "zone-a"
	out := render(t, cfg, sp)
	sep := func(ip string) string {
		return string(ServicePortEndpointChainName("ns1/svc1:p80", "tcp", ip+":80"))
	}
	assertLines(t, out, []string{
		`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j ` + sep("10.180.0.1"),
		`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.4:80" -j ` + sep("10.180.0.4"),
	}, []string{`:` + sep("10.180.0.2") + ` - [0:0]`, `:` + sep("10.180.0.3") + ` - [0:0]`})
}

func TestHasZoneHintMatchesWholeNamesOnly(t *testing.T) {
	e := Endpoint{ZoneHints: "us-east-1a,us-east-1b"}
	if !e.HasZoneHint("us-east-1b") || e.HasZoneHint("us-east-1") || e.HasZoneHint("") || (Endpoint{}).HasZoneHint("") {
		t.Error("HasZoneHint must match a whole comma-separated zone name")
	}
}
