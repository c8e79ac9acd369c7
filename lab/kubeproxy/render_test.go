package kubeproxy

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// webExample is kube-proxy.md §1.5 (a): ClusterIP with 3 endpoints plus a
// NodePort with eTP=Local, production mark, random-fully, no nfacct.
func webExample() (Config, ServicePort) {
	cfg := Config{
		NodeName: "node-a", NodeIPs: addrs("192.168.0.2"), ClusterCIDR: "10.0.0.0/16",
		RandomFully: true, LocalhostNodePorts: true,
	}
	sp := ServicePort{
		Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP",
		ClusterIP: addr("10.100.0.10"), Port: 80, NodePort: 30080, HealthCheckNodePort: 32000,
		ExternalPolicyLocal: true,
		// Deliberately unsorted: rendering sorts by "ip:port".
		Endpoints: []Endpoint{ready("10.0.3.10", 8080), readyLocal("10.0.1.10", 8080), ready("10.0.2.10", 8080)},
	}
	return cfg, sp
}

// Rules come in kube-proxy's emission order; the nat chain declarations are
// in reverse name order (see assemble), where kube-proxy writes them in map
// order.
func TestWorkedExampleIsByteExactInKubeProxyRuleOrderWithReverseSortedDeclarations(t *testing.T) {
	cfg, sp := webExample()
	got, err := Render(cfg, []ServicePort{sp})
	if err != nil {
		t.Fatal(err)
	}
	want := `*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-NODEPORTS -m comment --comment "default/web:http health check node port" -m tcp -p tcp --dport 32000 -j ACCEPT
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SVL-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SVC-CDGGSHYLG3RE2FKL - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SEP-TM7ZDZ4CR3G5D772 - [0:0]
:KUBE-SEP-MMMM55AJ7LKKZ6XO - [0:0]
:KUBE-SEP-BSPEHAJY7CFMBVZU - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-CDGGSHYLG3RE2FKL - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.100.0.10 --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30080 -j KUBE-EXT-CDGGSHYLG3RE2FKL
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.100.0.10 --dport 80 ! -s 10.0.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-EXT-CDGGSHYLG3RE2FKL -m comment --comment "pod traffic for default/web:http external destinations" -s 10.0.0.0/16 -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-EXT-CDGGSHYLG3RE2FKL -m comment --comment "masquerade LOCAL traffic for default/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-CDGGSHYLG3RE2FKL -m comment --comment "route LOCAL traffic for default/web:http external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-CDGGSHYLG3RE2FKL
-A KUBE-EXT-CDGGSHYLG3RE2FKL -j KUBE-SVL-CDGGSHYLG3RE2FKL
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.0.1.10:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-MMMM55AJ7LKKZ6XO
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.0.2.10:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-BSPEHAJY7CFMBVZU
-A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.0.3.10:8080" -j KUBE-SEP-TM7ZDZ4CR3G5D772
-A KUBE-SVL-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.0.1.10:8080" -j KUBE-SEP-MMMM55AJ7LKKZ6XO
-A KUBE-SEP-MMMM55AJ7LKKZ6XO -m comment --comment default/web:http -s 10.0.1.10 -j KUBE-MARK-MASQ
-A KUBE-SEP-MMMM55AJ7LKKZ6XO -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.0.1.10:8080
-A KUBE-SEP-BSPEHAJY7CFMBVZU -m comment --comment default/web:http -s 10.0.2.10 -j KUBE-MARK-MASQ
-A KUBE-SEP-BSPEHAJY7CFMBVZU -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.0.2.10:8080
-A KUBE-SEP-TM7ZDZ4CR3G5D772 -m comment --comment default/web:http -s 10.0.3.10 -j KUBE-MARK-MASQ
-A KUBE-SEP-TM7ZDZ4CR3G5D772 -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.0.3.10:8080
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
}

func TestRenderIsDeterministicWhateverTheInputOrder(t *testing.T) {
	base, err := Render(goldenConfig(), overallServices())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		svcs := overallServices()
		rng.Shuffle(len(svcs), func(i, j int) { svcs[i], svcs[j] = svcs[j], svcs[i] })
		for i := range svcs {
			eps := svcs[i].Endpoints
			rng.Shuffle(len(eps), func(a, b int) { eps[a], eps[b] = eps[b], eps[a] })
		}
		got, err := Render(goldenConfig(), svcs)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(base), string(got)); diff != "" {
			t.Fatalf("output depends on input order (-first +shuffled):\n%s", diff)
		}
	}
}

// render is Render for tests: it fails the test on error.
func render(t *testing.T, cfg Config, svcs ...ServicePort) string {
	t.Helper()
	b, err := Render(cfg, svcs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertLines checks that every want line is in payload and no unwanted one is.
func assertLines(t *testing.T, payload string, want, unwanted []string) {
	t.Helper()
	lines := strings.Split(payload, "\n")
	has := func(l string) bool {
		for _, x := range lines {
			if x == l {
				return true
			}
		}
		return false
	}
	for _, l := range want {
		if !has(l) {
			t.Errorf("missing line %q", l)
		}
	}
	for _, l := range unwanted {
		if has(l) {
			t.Errorf("unexpected line %q", l)
		}
	}
	if t.Failed() {
		t.Logf("payload:\n%s", payload)
	}
}

func TestInternalPolicyLocalDropsWithoutLocalEndpointsAndUsesSVLWithThem(t *testing.T) {
	sp := clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80, "10.180.0.1")
	sp.InternalPolicyLocal = true
	remoteOnly := render(t, goldenConfig(), sp)
	assertLines(t, remoteOnly,
		[]string{`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP`},
		[]string{`:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]`, `:KUBE-SVL-XPGD46QRK7WJZT7O - [0:0]`})

	sp.Endpoints = append(sp.Endpoints, readyLocal("10.180.0.2", 80))
	withLocal := render(t, goldenConfig(), sp)
	if err := checkRuleJumps(withLocal); err != nil {
		t.Error(err)
	}
	sep := ServicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.2:80")
	assertLines(t, withLocal, []string{
		`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVL-XPGD46QRK7WJZT7O`,
		`-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
		`-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j ` + string(sep),
	}, []string{`:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]`})
}

func TestServingTerminatingEndpointsAreOnlyAFallback(t *testing.T) {
	sp := clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80)
	sp.Endpoints = []Endpoint{{IP: addr("10.180.0.9"), Port: 80, Serving: true, Terminating: true}}
	out := render(t, goldenConfig(), sp)
	assertLines(t, out,
		[]string{`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.9:80" -j ` +
			string(ServicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.9:80"))},
		[]string{`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT`})

	// A ready endpoint wins over the terminating one.
	sp.Endpoints = append(sp.Endpoints, ready("10.180.0.1", 80))
	if out := render(t, goldenConfig(), sp); strings.Contains(out, "10.180.0.9") {
		t.Errorf("serving-terminating endpoint used although a ready one exists:\n%s", out)
	}

	// Not serving: unusable, so the ClusterIP rejects.
	sp.Endpoints = []Endpoint{{IP: addr("10.180.0.9"), Port: 80, Terminating: true}}
	assertLines(t, render(t, goldenConfig(), sp),
		[]string{`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT`}, nil)
}

func TestMasqueradeAllAndNoDetectorChangeTheMasqueradeRules(t *testing.T) {
	sp := overallServices()[1] // ns2/svc2: eTP=Local LB
	sp.Endpoints = []Endpoint{readyLocal("10.180.0.2", 80)}
	const masqNotLocal = `-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`
	const masqAll = `-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-MARK-MASQ`
	const podShortCircuit = `-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT`

	assertLines(t, render(t, goldenConfig(), sp), []string{masqNotLocal, podShortCircuit}, []string{masqAll})

	cfg := goldenConfig()
	cfg.MasqueradeAll = true
	assertLines(t, render(t, cfg, sp), []string{masqAll, podShortCircuit}, []string{masqNotLocal})

	cfg = goldenConfig()
	cfg.ClusterCIDR = ""
	out := render(t, cfg, sp)
	assertLines(t, out, []string{`-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -j KUBE-SVL-GNZBNJ2PO5MGZ6GT`}, []string{masqNotLocal, masqAll, podShortCircuit})
	if err := checkRuleJumps(out); err != nil {
		t.Error(err)
	}
}

func TestNodePortAddressesAndLocalhostSettingShapeTheLastRule(t *testing.T) {
	const prefix = `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" `
	sp := overallServices()[2] // ns3/svc3 NodePort 3003
	const localhostNP = `-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp -d 127.0.0.0/8 --dport 3003 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-X27LE4BHSL4DOUIK`

	cfg := goldenConfig()
	cfg.LocalhostNodePorts = false
	assertLines(t, render(t, cfg, sp),
		[]string{prefix + `-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS`},
		[]string{":KUBE-FIREWALL - [0:0]", localhostNP})

	cfg = goldenConfig()
	cfg.NodePortAddresses = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("192.168.99.0/24")}
	assertLines(t, render(t, cfg, sp),
		[]string{prefix + `-d 192.168.0.2 -j KUBE-NODEPORTS`, prefix + `-d 192.168.99.11 -j KUBE-NODEPORTS`},
		// 127.0.0.1 is not in the list, so localhost NodePorts are off.
		[]string{prefix + `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`, ":KUBE-FIREWALL - [0:0]", localhostNP})

	cfg.NodePortAddresses = append(cfg.NodePortAddresses, netip.MustParsePrefix("127.0.0.0/8"))
	assertLines(t, render(t, cfg, sp),
		[]string{prefix + `-d 127.0.0.1 -j KUBE-NODEPORTS`, ":KUBE-FIREWALL - [0:0]", localhostNP}, nil)
}

func TestLargeClusterModeDropsOnlyEndpointComments(t *testing.T) {
	sp := clusterIPService("ns1", "big", "", "172.30.0.50", 80)
	for i := range 1001 {
		sp.Endpoints = append(sp.Endpoints, ready(netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i % 256)}).String(), 80))
	}
	out := render(t, goldenConfig(), sp)
	sep := string(ServicePortEndpointChainName("ns1/big", "tcp", "10.1.0.0:80"))
	assertLines(t, out, []string{
		`-A KUBE-SERVICES -m comment --comment "ns1/big cluster IP" -m tcp -p tcp -d 172.30.0.50 --dport 80 -j ` + string(ServicePortChainName("ns1/big", "tcp")),
		`-A ` + sep + ` -s 10.1.0.0 -j KUBE-MARK-MASQ`,
		`-A ` + sep + ` -m tcp -p tcp -j DNAT --to-destination 10.1.0.0:80`,
		`-A ` + string(ServicePortChainName("ns1/big", "tcp")) + ` -m statistic --mode random --probability 0.0009990010 -j ` + sep,
	}, nil)
	if strings.Contains(out, "ns1/big -> ") {
		t.Errorf("large cluster mode kept SVC->SEP comments")
	}

	sp.Endpoints = sp.Endpoints[:1000]
	if out := render(t, goldenConfig(), sp); !strings.Contains(out, "-m comment --comment ns1/big -s 10.1.0.0 -j KUBE-MARK-MASQ") {
		t.Errorf("1000 endpoints (the threshold) should keep comments")
	}
}

func TestFirewallChainAcceptsLBIPSourceWhenNodeIsInASourceRange(t *testing.T) {
	sp := overallServices()[4] // ns5/svc5 with source range 203.0.113.0/25
	sp.LoadBalancerSourceRanges = []string{"203.0.113.0/25", "192.168.0.0/16", "2001:db8::/32", "bogus"}
	out := render(t, goldenConfig(), sp)
	assertLines(t, out, []string{
		`-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C`,
		`-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 192.168.0.0/16 -j KUBE-EXT-NUKIZ6OKUXPJNT4C`,
		`-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 5.6.7.8 -j KUBE-EXT-NUKIZ6OKUXPJNT4C`,
	}, nil)
	if strings.Contains(out, "2001:db8") || strings.Contains(out, "bogus") {
		t.Errorf("other-family or unparsable source ranges leaked into the IPv4 rules")
	}
}

func TestNoEndpointsRejectsEveryExternalDestination(t *testing.T) {
	sp := overallServices()[1] // ns2/svc2
	sp.Endpoints = nil
	out := render(t, goldenConfig(), sp)
	assertLines(t, out, []string{
		`-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j REJECT`,
		`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j REJECT`,
		`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT`,
		`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT`,
		`-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT`,
	}, nil)
	if strings.Contains(out, "GNZBNJ2PO5MGZ6GT - [0:0]") {
		t.Errorf("a Service without endpoints must have no nat chains:\n%s", out)
	}
}

func TestIPv6ProxierRendersOnlyIPv6Services(t *testing.T) {
	cfg := Config{NodeIPs: addrs("192.168.0.2", "fd00::2"), IPv6: true, ClusterCIDR: "10.0.0.0/8,fd00:10::/64",
		MasqueradeMark: "0x4000", LocalhostNodePorts: true, NFAcct: true}
	v6 := ServicePort{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP", ClusterIP: addr("fd00:172::41"), Port: 80,
		NodePort: 3001, ExternalIPs: addrs("192.168.99.22", "fd00:99::22"),
		Endpoints: []Endpoint{ready("fd00:10::1", 80), ready("10.180.0.1", 80)}}
	v4 := clusterIPService("ns2", "svc2", "p80", "172.30.0.42", 80, "10.180.0.2")
	out := render(t, cfg, v6, v4)
	sep := string(ServicePortEndpointChainName("ns1/svc1:p80", "tcp", "[fd00:10::1]:80"))
	assertLines(t, out, []string{
		`-A ` + sep + ` -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination [fd00:10::1]:80`,
		`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d fd00:172::41 --dport 80 ! -s fd00:10::/64 -j KUBE-MARK-MASQ`,
		`-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
		`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS`,
	}, []string{":KUBE-FIREWALL - [0:0]"})
	for _, leak := range []string{"ns2/svc2", "10.180.0.1", "192.168.99.22", "127.0.0.0/8"} {
		if strings.Contains(out, leak) {
			t.Errorf("IPv4 value %q leaked into the IPv6 payload", leak)
		}
	}
}

func TestRenderRejectsInvalidInputAndSkipsHeadlessServices(t *testing.T) {
	good := clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80, "10.0.1.1")
	for name, svcs := range map[string][]ServicePort{
		"unknown protocol":  {{Namespace: "a", Name: "b", Protocol: "ICMP", ClusterIP: addr("172.30.0.1"), Port: 80}},
		"port out of range": {{Namespace: "a", Name: "b", Protocol: "TCP", ClusterIP: addr("172.30.0.1"), Port: 70000}},
		"duplicate port":    {good, good},
	} {
		if _, err := Render(goldenConfig(), svcs); !errors.Is(err, ErrInvalidServicePort) {
			t.Errorf("%s: Render returned %v, want ErrInvalidServicePort", name, err)
		}
	}
	if _, err := Render(Config{ClusterCIDR: "10.0.0.0/33"}, nil); err == nil {
		t.Errorf("Render accepted an invalid cluster CIDR")
	}
	headless := ServicePort{Namespace: "a", Name: "headless", Protocol: "TCP", Port: 80, Endpoints: []Endpoint{ready("10.0.0.5", 80)}}
	withHeadless := render(t, goldenConfig(), good, headless)
	if withHeadless != render(t, goldenConfig(), good) {
		t.Errorf("a headless Service changed the rules:\n%s", withHeadless)
	}
}

func TestProbabilityUsesKubeProxyFormatting(t *testing.T) {
	r := newRenderer(&settings{}, 0, 0, 0, 0)
	for n, want := range map[int]string{1: "1.0000000000", 2: "0.5000000000", 3: "0.3333333333", 7: "0.1428571429", 1001: "0.0009990010"} {
		if got := r.probability(n); got != want {
			t.Errorf("probability(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMasqueradeMarkForBitMatchesKubeProxyFormatting(t *testing.T) {
	for bit, want := range map[int]string{14: DefaultMasqueradeMark, 0: "0x00000001", 31: "0x80000000"} {
		if got := MasqueradeMarkForBit(bit); got != want {
			t.Errorf("MasqueradeMarkForBit(%d) = %q, want %q", bit, got, want)
		}
	}
}

func TestSloppyParsersAcceptLeadingZerosAndRejectGarbage(t *testing.T) {
	for in, want := range map[string]string{"172.30.0.041": "172.30.0.41", "010.0.0.1": "10.0.0.1", "fd00::1": "fd00::1", "::ffff:001.2.3.4": "1.2.3.4"} {
		got, err := ParseAddrSloppy(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseAddrSloppy(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"203.0.113.000/025": "203.0.113.0/25", "10.1.2.3/8": "10.0.0.0/8", "fd00::5/64": "fd00::/64"} {
		got, err := ParsePrefixSloppy(in)
		if err != nil || got.String() != want {
			t.Errorf("ParsePrefixSloppy(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"1.2.3.256", "1.2.3", "1.2.3.4.5", "1.2.3.x", ""} {
		if _, err := ParseAddrSloppy(in); err == nil {
			t.Errorf("ParseAddrSloppy(%q) accepted garbage", in)
		}
	}
	for _, in := range []string{"1.2.3.4", "1.2.3.4/33", "1.2.3.4/", "1.2.3.4/-1"} {
		if _, err := ParsePrefixSloppy(in); err == nil {
			t.Errorf("ParsePrefixSloppy(%q) accepted garbage", in)
		}
	}
}

func TestDuplicateEndpointsCollapseAndTheReadyCopyWins(t *testing.T) {
	sp := clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80)
	sp.Endpoints = []Endpoint{ready("10.180.0.1", 80), ready("10.180.0.1", 80), {IP: addr("10.180.0.2"), Port: 80}, ready("10.180.0.2", 80)}
	out := render(t, goldenConfig(), sp)
	sep1 := string(ServicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.1:80"))
	sep2 := string(ServicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.2:80"))
	if n := strings.Count(out, ":"+sep1+" - [0:0]"); n != 1 {
		t.Errorf("endpoint chain declared %d times, want once:\n%s", n, out)
	}
	assertLines(t, out, []string{
		`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j ` + sep1,
		`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j ` + sep2,
	}, nil)
}

// Both iptables backends restore a large payload faster when its chains are
// declared in reverse name order, so every payload, full or partial, declares
// them so.
func TestNATChainDeclarationsAreInReverseNameOrder(t *testing.T) {
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	svcs := benchServices(300, 3)
	check := func(what string, payload []byte) {
		_, nat, _ := strings.Cut(string(payload), "*nat\n")
		var decl []string
		for _, l := range strings.Split(nat, "\n") {
			if strings.HasPrefix(l, ":") {
				decl = append(decl, strings.Fields(l[1:])[0])
			}
		}
		if len(decl) < 4 {
			t.Fatalf("%s: only %d nat chain declarations", what, len(decl))
		}
		slices.Reverse(decl)
		if !slices.IsSorted(decl) {
			t.Errorf("%s: nat chain declarations are not in reverse name order: %v", what, decl[max(0, len(decl)-12):])
		}
	}
	r, err := p.Sync(svcs)
	if err != nil {
		t.Fatal(err)
	}
	check("full sync", r.Payload)
	p.Applied(r, nil)
	svcs[7].Endpoints = svcs[7].Endpoints[:1] // two KUBE-SEP chains go: -X lines
	svcs[9].Endpoints[0].IP = addr("10.99.0.1")
	if r, err = p.Sync(svcs); err != nil {
		t.Fatal(err)
	}
	if r.Full || len(r.DeletedChains) != 3 {
		t.Fatalf("want a partial sync deleting 3 chains, got full=%v deleted=%v", r.Full, r.DeletedChains)
	}
	check("partial sync", r.Payload)
}
