package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// status names where aws-node's rules live: its iptables rules on the
// node's backend, its connmark in the native table only for v1.23+ on nft.
func TestStatusNamesWhereTheVPCCNIRulesLive(t *testing.T) {
	for _, c := range []struct {
		version, backend string
		want             VPCCNIStatus
	}{
		{"v1.23", spec.IptablesNFT, VPCCNIStatus{"v1.23", "iptables-nft", "nft table ip aws-cni"}},
		{"v1.23", spec.IptablesLegacy, VPCCNIStatus{"v1.23", "iptables-legacy", "iptables-legacy"}},
		{"v1.22", spec.IptablesNFT, VPCCNIStatus{"v1.22", "iptables-nft", "iptables-nft"}},
	} {
		if got := vpcCNIStatus(c.version, c.backend); got != c.want {
			t.Errorf("%s on %s: %+v, want %+v", c.version, c.backend, got, c.want)
		}
	}
}

// Issue 13 saw the table's last line run into the timing line a shell's
// time printed on stderr: every line of the table, the last included, ends
// with a newline, and the columns line up.
func TestStatusTableEndsEveryLine(t *testing.T) {
	doc := LabStatus{Objects: []ObjectInterface{
		{Object: "vpc", Namespace: "lc.x.vpc", Interface: "node51.eth0", State: "up", MAC: "0a:00:00:00:00:01", MTU: 9001, Master: "br-a"},
		{Object: "node51", Namespace: "lc.x.node51", Interface: "eth0", State: "up", MAC: "0a:00:00:00:00:02", MTU: 9001,
			Addresses: []string{"192.168.1.50/24"}},
		{Object: "pod51", Namespace: "lc.x.pod51", Error: "opening namespace lc.x.pod51: no such file"},
	}}
	var b bytes.Buffer
	if err := writeStatusTable(&b, doc); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("the table's last line has no newline: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 lines, got %d:\n%s", len(lines), out)
	}
	col := strings.Index(lines[0], "NAMESPACE")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "lc.x.") {
			t.Errorf("column NAMESPACE at %d does not line up in %q", col, l)
		}
	}
	if !strings.Contains(lines[1], "(port of br-a)") || !strings.Contains(lines[3], "(missing: opening namespace") {
		t.Errorf("bridge port or missing namespace not shown:\n%s", out)
	}
}
