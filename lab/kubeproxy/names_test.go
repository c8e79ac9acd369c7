package kubeproxy

import (
	"regexp"
	"slices"
	"testing"
)

func TestChainNamesMatchKubeProxyHashes(t *testing.T) {
	// Every row is a name that appears in the upstream goldens or on real
	// clusters (kube-proxy.md §2).
	for _, tc := range []struct {
		got  Chain
		want Chain
	}{
		{ServicePortChainName("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{ServiceExternalChainName("ns1/svc1:p80", "tcp"), "KUBE-EXT-XPGD46QRK7WJZT7O"},
		{ServiceFirewallChainName("ns1/svc1:p80", "tcp"), "KUBE-FW-XPGD46QRK7WJZT7O"},
		{ServicePortPolicyLocalChainName("ns2/svc2:p80", "tcp"), "KUBE-SVL-GNZBNJ2PO5MGZ6GT"},
		{ServicePortChainName("ns2/svc2:p80", "TCP"), "KUBE-SVC-GNZBNJ2PO5MGZ6GT"},
		{ServiceFirewallChainName("ns5/svc5:p80", "tcp"), "KUBE-FW-NUKIZ6OKUXPJNT4C"},
		{ServicePortChainName("ns2/svc2:p8080", "tcp"), "KUBE-SVC-2VJB64SDSIJUP5T6"},
		{ServicePortChainName("ns3/svc3:p80", "tcp"), "KUBE-SVC-X27LE4BHSL4DOUIK"},
		{ServicePortChainName("ns4/svc4:p80", "tcp"), "KUBE-SVC-4SW47YFZTEDKD3PK"},
		{ServicePortEndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
		{ServicePortEndpointChainName("ns4/svc4:p80", "tcp", "10.180.0.4:80"), "KUBE-SEP-UKSFD7AGPMPPLUHC"},
		{ServicePortEndpointChainName("ns4/svc4:p80", "tcp", "10.180.0.5:80"), "KUBE-SEP-C6EBXVWJJZMIWKLZ"},
		{ServicePortEndpointChainName("ns5/svc5:p80", "tcp", "10.180.0.3:80"), "KUBE-SEP-I77PXRDZVX7PMWMN"},
		{ServicePortEndpointChainName("ns3/svc3:p80", "tcp", "10.0.3.2:80"), "KUBE-SEP-DKCFIS26GWF2WLWC"},
		{ServicePortChainName(ServicePortName("default", "kubernetes", "https"), "tcp"), "KUBE-SVC-NPX46M4PTMTKRN6Y"},
		{ServicePortChainName(ServicePortName("kube-system", "kube-dns", "dns"), "udp"), "KUBE-SVC-TCOU7JCQXEZGVUNU"},
		{ServicePortChainName(ServicePortName("kube-system", "kube-dns", "dns-tcp"), "tcp"), "KUBE-SVC-ERIFXISQEP7F7OF4"},
		{ServicePortChainName(ServicePortName("default", "web", "http"), "tcp"), "KUBE-SVC-CDGGSHYLG3RE2FKL"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestEveryGoldenChainNameIsProducedByTheGoldenInputs(t *testing.T) {
	// The golden file's per-service chains must all come out of the hash
	// helpers applied to the golden Services: nothing extra, nothing missing.
	golden := readTestdata(t, "overall.txt")
	var want []string
	for _, m := range regexp.MustCompile(`(?m)^:(KUBE-(?:SVC|SVL|EXT|FW|SEP)-[A-Z0-9]{16}) `).FindAllStringSubmatch(golden, -1) {
		want = append(want, m[1])
	}
	got, err := Render(goldenConfig(), overallServices())
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, c := range ChainsFromSave(got, TableNAT) {
		if IsServiceChainName(c) {
			have = append(have, string(c))
		}
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(want, have) {
		t.Errorf("service chains: golden %v, rendered %v", want, have)
	}
}

func TestServicePortNameOmitsColonForUnnamedPorts(t *testing.T) {
	if got := ServicePortName("ns", "svc", ""); got != "ns/svc" {
		t.Errorf("unnamed port: %q", got)
	}
	if got := ServicePortName("ns", "svc", "http"); got != "ns/svc:http" {
		t.Errorf("named port: %q", got)
	}
}

func TestIsServiceChainNameKnowsOnlyKubeProxyPrefixes(t *testing.T) {
	for c, want := range map[Chain]bool{
		"KUBE-SVC-X": true, "KUBE-SVL-X": true, "KUBE-EXT-X": true, "KUBE-FW-X": true, "KUBE-SEP-X": true,
		"KUBE-SERVICES": false, "KUBE-MARK-MASQ": false, "KUBE-PROXY-FIREWALL": false, "LAB-NLB": false,
	} {
		if got := IsServiceChainName(c); got != want {
			t.Errorf("IsServiceChainName(%s) = %v", c, got)
		}
	}
}
