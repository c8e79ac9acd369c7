package spec

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `
name: t1
vpc: {cidr: 192.168.0.0/16}
azs:
  - name: az1
    subnets:
      - {name: a, cidr: 192.168.1.0/24}
      - {name: b, cidr: 192.168.2.0/24}
nodes:
  - name: n1
    enis:
      - {subnet: a, ip: 192.168.1.50}
      - {subnet: a, ip: 192.168.1.60}
pods:
  - {name: p1, node: n1, eni: 0, ip: 192.168.1.51}
  - {name: p2, node: n1, eni: 1, ip: 192.168.1.61}
hosts:
  - {name: c1, subnet: b, ip: 192.168.2.10}
walks:
  - {name: W1, from: p1, to: p2}
  - {name: W0, kind: state}
`

func parse(t *testing.T, y string) (*Topology, error) {
	t.Helper()
	return Parse("t.yaml", "t", []byte(y))
}

func mustFail(t *testing.T, y string, wants ...string) {
	t.Helper()
	_, err := parse(t, y)
	if err == nil {
		t.Fatalf("topology accepted; want an error containing %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestGoodTopologyParsesWithDefaults(t *testing.T) {
	top, err := parse(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if top.VPC.MTU != 9001 || top.Nodes[0].InstanceType != "m5.large" || *top.Nodes[0].ENIs[1].Index != 1 {
		t.Errorf("defaults not applied: mtu %d type %s", top.VPC.MTU, top.Nodes[0].InstanceType)
	}
	if top.Pods[0].Namespace != "default" || top.Walks[0].Protocol != "icmp" || top.Walks[1].Kind != WalkState {
		t.Errorf("pod/walk defaults not applied: %+v %+v", top.Pods[0], top.Walks)
	}
	if got := top.VPC.ServiceCIDR.String(); got != "10.100.0.0/16" {
		t.Errorf("service CIDR %s, want 10.100.0.0/16 for a VPC outside 10/8", got)
	}
}

func TestUnknownKeyIsAnErrorWithFileAndLine(t *testing.T) {
	mustFail(t, strings.Replace(good, "    enis:", "    colour: blue\n    enis:", 1), "t.yaml", "line 11", "colour")
}

func TestMalformedAddressNamesTheLine(t *testing.T) {
	mustFail(t, strings.Replace(good, "192.168.1.50}", "192.168.1.500}", 1), "t.yaml:12", "nodes[0].enis[0]", "192.168.1.500")
}

func TestAddressOutsideSubnetNamesObjectAndLine(t *testing.T) {
	mustFail(t, strings.Replace(good, "ip: 192.168.1.51}", "ip: 192.168.3.51}", 1),
		"t.yaml:15", "pods[0].ip", "outside subnet \"a\"")
}

func TestDuplicateIPIsRejected(t *testing.T) {
	mustFail(t, strings.Replace(good, "ip: 192.168.1.61}", "ip: 192.168.1.51}", 1), "pods[1].ip", "already used")
	mustFail(t, strings.Replace(good, "ip: 192.168.1.51}", "ip: 192.168.1.50}", 1), "pods[0].ip", "already used by node n1 eth0")
}

func TestOverlappingSubnetsAreRejected(t *testing.T) {
	mustFail(t, strings.Replace(good, "192.168.2.0/24", "192.168.1.128/25", 1), "overlaps subnet \"a\"")
}

func TestInterfaceNameTooLongIsRejected(t *testing.T) {
	mustFail(t, strings.ReplaceAll(good, "n1", "averylongnodename"), "router port name", "22 bytes", "at most 15")
	mustFail(t, strings.Replace(good, "{name: a,", "{name: averyveryverylong,", 1), "bridge name", "at most 15")
}

func TestReservedAddressesAreRejected(t *testing.T) {
	mustFail(t, strings.Replace(good, "ip: 192.168.1.51}", "ip: 192.168.1.1}", 1), "reserved by AWS")
	mustFail(t, strings.Replace(good, "ip: 192.168.1.51}", "ip: 192.168.1.255}", 1), "reserved by AWS")
}

func TestENICapacityAsEC2CountsIt(t *testing.T) {
	var b strings.Builder
	b.WriteString(strings.Split(good, "pods:")[0] + "pods:\n")
	// t3.small: 4 IPv4 per ENI, so eth0 takes its own IP and 3 pods at most.
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "  - {name: q%d, node: n1, eni: 0, ip: 192.168.1.%d}\n", i, 100+i)
	}
	y := strings.Replace(b.String(), "  - name: n1\n", "  - name: n1\n    instanceType: t3.small\n", 1)
	mustFail(t, y, "eth0 needs 5 IPv4 slots", "t3.small allows 4")
}

func TestUnknownReferencesAreRejected(t *testing.T) {
	mustFail(t, strings.Replace(good, "node: n1, eni: 0", "node: n9, eni: 0", 1), "unknown node \"n9\"")
	mustFail(t, strings.Replace(good, "eni: 1, ip", "eni: 2, ip", 1), "no ENI with device index 2")
	mustFail(t, strings.Replace(good, "from: p1", "from: nobody", 1), "walks[0].from", "not a pod or host")
	mustFail(t, strings.Replace(good, "subnet: b, ip", "subnet: z, ip", 1), "unknown subnet \"z\"")
}

func TestEveryErrorIsReportedAtOnce(t *testing.T) {
	y := strings.Replace(good, "ip: 192.168.1.51}", "ip: 192.168.3.51}", 1)
	y = strings.Replace(y, "from: p1", "from: nobody", 1)
	_, err := parse(t, y)
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
}

func TestPrefixesNeedPrefixDelegation(t *testing.T) {
	y := strings.Replace(good, "ip: 192.168.1.60}", "ip: 192.168.1.60, prefixes: [192.168.1.96/28]}", 1)
	mustFail(t, y, "prefixDelegation")
	y = strings.Replace(y, "cidr: 192.168.0.0/16}", "cidr: 192.168.0.0/16, prefixDelegation: true}", 1)
	y = strings.Replace(y, "ip: 192.168.1.61}", "ip: 192.168.1.97}", 1)
	if _, err := parse(t, y); err != nil {
		t.Fatalf("a pod inside a delegated /28 is valid: %v", err)
	}
	mustFail(t, strings.Replace(y, "192.168.1.96/28", "192.168.1.90/28", 1), "aligned /28")
}

func TestLabNameRules(t *testing.T) {
	for _, bad := range []string{"", "Has-Upper", "dot.ted", "-lead", strings.Repeat("x", 33)} {
		if ValidateLabName(bad) == nil {
			t.Errorf("lab name %q accepted", bad)
		}
	}
	if err := ValidateLabName("pod-networking"); err != nil {
		t.Error(err)
	}
}

func TestHostVethNameMatchesVPCCNITestVectors(t *testing.T) {
	for _, c := range []struct{ ns, pod, want string }{
		{"kube-system", "coredns-57ff979f67-qqbdh", "enib5faff8a083"},
		{"default", "nginx", "enic440f455693"},
	} {
		if got := HostVethName(c.ns, c.pod); got != c.want {
			t.Errorf("HostVethName(%s, %s) = %s, want %s", c.ns, c.pod, got, c.want)
		}
	}
}

func TestServiceCIDRFollowsEKSRule(t *testing.T) {
	if got := DefaultServiceCIDR(netip.MustParsePrefix("10.0.0.0/16")); got.String() != "172.20.0.0/16" {
		t.Errorf("VPC in 10/8: got %s", got)
	}
	if got := DefaultServiceCIDR(netip.MustParsePrefix("192.168.0.0/16")); got.String() != "10.100.0.0/16" {
		t.Errorf("VPC outside 10/8: got %s", got)
	}
}

func TestMACsAreStableLocallyAdministeredUnicast(t *testing.T) {
	a, b := ENIMAC("n1", 1), ENIMAC("n1", 1)
	if a.String() != b.String() || a.String() == ENIMAC("n1", 0).String() {
		t.Errorf("ENI MACs not stable and distinct: %s %s", a, ENIMAC("n1", 0))
	}
	for _, m := range [][]byte{a, PodMAC("d", "p"), HostVethMAC("d", "p"), RouterMAC("a"), RouterPortMAC("n", 0)} {
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Errorf("MAC %x is not locally administered unicast", m)
		}
	}
}

func TestShippedTopologiesValidate(t *testing.T) {
	files, _ := filepath.Glob("../../topologies/*.yaml")
	if len(files) == 0 {
		t.Fatal("no topologies found")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat("../../topologies/pod-networking.yaml"); err != nil {
		t.Error("pod-networking topology missing")
	}
}

func TestGeneratedTopologiesAreValidAndFillSecondaryENIs(t *testing.T) {
	top, err := Generate("bench", 20, 50, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Pods) != 1000 || len(top.Nodes[0].ENIs) != 2 || top.Pods[29].ENI != 1 {
		t.Errorf("%d pods, %d ENIs, pod 29 on eth%d", len(top.Pods), len(top.Nodes[0].ENIs), top.Pods[29].ENI)
	}
	if _, err := Generate("bench", 2, 300, 1); err == nil {
		t.Error("300 pods per node fit no m5.4xlarge, but Generate accepted them")
	}
}

func TestIptablesBackendDefaultsToNFTAndRejectsOthers(t *testing.T) {
	top, err := parse(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if top.Iptables != IptablesNFT {
		t.Errorf("iptables backend %q by default, want %q", top.Iptables, IptablesNFT)
	}
	if top, err := parse(t, "iptables: legacy\n"+good); err != nil || top.Iptables != IptablesLegacy {
		t.Errorf("iptables: legacy gave %v, %v", top, err)
	}
	mustFail(t, "iptables: ebpf\n"+good, "t.yaml", "iptables", `"ebpf"`, "nft or legacy")
}

func TestKubeProxyModeDefaultsToIptablesAndRejectsOthers(t *testing.T) {
	top, err := parse(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if top.KubeProxy.Mode != KubeProxyIPTables || top.NFTablesMode() {
		t.Errorf("kube-proxy mode %q by default, want %q", top.KubeProxy.Mode, KubeProxyIPTables)
	}
	if top, err := parse(t, "kubeProxy: {mode: nftables}\n"+good); err != nil || !top.NFTablesMode() {
		t.Errorf("kubeProxy.mode nftables gave %v, %v", top, err)
	}
	mustFail(t, "kubeProxy:\n  mode: ipvs\n"+good, "t.yaml:2", "kubeProxy.mode", `"ipvs"`, "iptables or nftables")
}
