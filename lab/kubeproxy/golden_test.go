package kubeproxy

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goldenConfig is upstream's unit-test environment (kube-proxy.md §6).
func goldenConfig() Config {
	return Config{
		NodeName:           "test-node",
		NodeIPs:            []netip.Addr{netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.99.11")},
		ClusterCIDR:        "10.0.0.0/8",
		MasqueradeMark:     "0x4000",
		LocalhostNodePorts: true,
		NFAcct:             true,
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = addr(s)
	}
	return out
}

// ready is a ready endpoint on another node.
func ready(ip string, port int32) Endpoint {
	return Endpoint{IP: addr(ip), Port: port, Ready: true, Serving: true}
}

// readyLocal is a ready endpoint on this node.
func readyLocal(ip string, port int32) Endpoint {
	e := ready(ip, port)
	e.Local = true
	return e
}

// overallServices are the six inputs of TestOverallIPTablesRules.
func overallServices() []ServicePort {
	return []ServicePort{
		{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.41"), Port: 80,
			Endpoints: []Endpoint{ready("10.180.0.1", 80)}},
		// eTP=Local LoadBalancer whose only endpoint has no nodeName.
		{Namespace: "ns2", Name: "svc2", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.42"), Port: 80,
			NodePort: 3001, LoadBalancerIPs: addrs("1.2.3.4"), ExternalIPs: addrs("192.168.99.22"),
			ExternalPolicyLocal: true, HealthCheckNodePort: 30000,
			Endpoints: []Endpoint{ready("10.180.0.2", 80)}},
		{Namespace: "ns3", Name: "svc3", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.43"), Port: 80,
			NodePort: 3003, Endpoints: []Endpoint{ready("10.180.0.3", 80)}},
		// Type NodePort without a nodePort value.
		{Namespace: "ns4", Name: "svc4", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.44"), Port: 80,
			ExternalIPs: addrs("192.168.99.33"),
			Endpoints:   []Endpoint{ready("10.180.0.4", 80), readyLocal("10.180.0.5", 80)}},
		// eTP=Cluster: the health check node port is ignored.
		{Namespace: "ns5", Name: "svc5", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.45"), Port: 80,
			NodePort: 3002, LoadBalancerIPs: addrs("5.6.7.8"), HealthCheckNodePort: 30000,
			LoadBalancerSourceRanges: []string{" 203.0.113.0/25"},
			SessionAffinityClientIP:  true, StickyMaxAgeSeconds: 10800,
			Endpoints: []Endpoint{ready("10.180.0.3", 80)}},
		{Namespace: "ns6", Name: "svc6", PortName: "p80", Protocol: "TCP", ClusterIP: addr("172.30.0.46"), Port: 80},
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOverallRulesMatchUpstreamGolden(t *testing.T) {
	got, err := Render(goldenConfig(), overallServices())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRuleJumps(string(got)); err != nil {
		t.Errorf("payload fails upstream's jump consistency check: %v", err)
	}
	assertRulesEqual(t, readTestdata(t, "overall.txt"), got)
}

func TestOverallPayloadRestoresIntoEmptyKernelModel(t *testing.T) {
	got, err := Render(goldenConfig(), overallServices())
	if err != nil {
		t.Fatal(err)
	}
	initial, err := InitialRestore(got)
	if err != nil {
		t.Fatal(err)
	}
	k := newKernelModel()
	if err := k.restore(string(initial)); err != nil {
		t.Fatalf("restore: %v\n%s", err, initial)
	}
	for _, table := range []string{"filter", "nat"} {
		if d := k.danglingJumps(table); len(d) > 0 {
			t.Errorf("%s: jumps to missing or empty chains: %v", table, d)
		}
	}
}

func TestBadIPsAreNormalisedLikeUpstreamGolden(t *testing.T) {
	must := func(a netip.Addr, err error) netip.Addr {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	svc := ServicePort{
		Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP",
		ClusterIP: must(ParseAddrSloppy("172.30.0.041")), Port: 80, NodePort: 3001,
		LoadBalancerIPs:          []netip.Addr{must(ParseAddrSloppy("1.2.3.004"))},
		ExternalIPs:              []netip.Addr{must(ParseAddrSloppy("192.168.099.022"))},
		LoadBalancerSourceRanges: []string{"203.0.113.000/025"},
		Endpoints:                []Endpoint{{IP: must(ParseAddrSloppy("10.180.00.001")), Port: 80, Ready: true, Serving: true}},
	}
	got, err := Render(goldenConfig(), []ServicePort{svc})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRuleJumps(string(got)); err != nil {
		t.Errorf("jump consistency: %v", err)
	}
	assertRulesEqual(t, readTestdata(t, "badips.txt"), got)
}

func TestGoldenFilesAreInNormalisedOrder(t *testing.T) {
	// If a golden file were not a fixpoint of the normalisation, comparing
	// normalised output with it could never succeed.
	for _, name := range []string{"overall.txt", "badips.txt"} {
		want := readTestdata(t, name)
		got, err := normalizeRestore(want)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != want {
			t.Errorf("%s is not in normalised order", name)
		}
	}
	for i, step := range partialSyncSteps(t) {
		got, err := normalizeRestore(step)
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		if got != strings.TrimLeft(step, "\n") {
			t.Errorf("partial-sync step %d is not in normalised order", i+1)
		}
	}
}

func TestTestdataMatchesSharedReference(t *testing.T) {
	shared := filepath.Join("..", "..", "..", "shared", "reference", "kube-proxy-golden")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared reference not beside the repo: %v", err)
	}
	for _, name := range []string{"overall.txt", "partial-sync.txt", "badips.txt"} {
		want, err := os.ReadFile(filepath.Join(shared, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := readTestdata(t, name); !bytes.Equal([]byte(got), want) {
			t.Errorf("testdata/%s differs from %s", name, filepath.Join(shared, name))
		}
	}
}

var stepHeaderRe = regexp.MustCompile(`(?m)^# === step (\d+):.*===\n`)

// partialSyncSteps splits partial-sync.txt into its nine dumps.
func partialSyncSteps(t *testing.T) []string {
	t.Helper()
	data := readTestdata(t, "partial-sync.txt")
	locs := stepHeaderRe.FindAllStringIndex(data, -1)
	if len(locs) != 9 {
		t.Fatalf("partial-sync.txt has %d step headers, want 9", len(locs))
	}
	steps := make([]string, len(locs))
	for i, loc := range locs {
		end := len(data)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		steps[i] = data[loc[1]:end]
	}
	return steps
}
