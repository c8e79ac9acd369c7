package plan

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// upstreamSetupExample is the table in the doc comment of nftConnmark.Setup
// (aws/amazon-vpc-cni-k8s v1.23.0, pkg/networkutils/nftables_connmark.go)
// for vethPrefix "eni", mark 0x80 and exemptCIDRs ["10.0.0.0/8",
// "172.16.0.0/12"], written as `nft -s list` prints those expressions:
// priority -90 as "dstnat + 10", the restore rule (counter, ct load,
// bitwise AND, meta store) as "meta mark set ct mark & 0x00000080" and the
// set-mark rule (bitwise mask ^0x80, xor 0x80) as "ct mark | 0x00000080".
const upstreamSetupExample = `table ip aws-cni {
	chain nat-prerouting {
		type nat hook prerouting priority dstnat + 10; policy accept;
		fib daddr type local return
		iifname "eni*" counter jump snat-mark
		counter meta mark set ct mark & 0x00000080
	}

	chain snat-mark {
		counter ip daddr 172.16.0.0/12 return
		counter ip daddr 10.0.0.0/8 return
		counter ct mark set ct mark | 0x00000080
	}
}
`

func TestVPCCNINFTTableIsUpstreamsSetupExample(t *testing.T) {
	got := VPCCNINFTTable([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		spec.VPCCNI{Version: "v1.23", ExcludeSNATCIDRs: []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}})
	if got != upstreamSetupExample {
		t.Errorf("got:\n%s\nwant (nftConnmark.Setup's example):\n%s", got, upstreamSetupExample)
	}
}

// External SNAT: nftConnmark.Cleanup deletes the table, so there is none.
func TestVPCCNINFTTableIsAbsentWithExternalSNAT(t *testing.T) {
	if got := VPCCNINFTTable([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}, spec.VPCCNI{ExternalSNAT: true}); got != "" {
		t.Errorf("external SNAT wrote a table:\n%s", got)
	}
}

// The node: v1.23 on nf_tables moves the nat connmark rules from iptables
// into the native table, keeps the SNAT chain and mangle rules in iptables,
// in both kube-proxy modes; v1.23 on legacy and v1.22 on nft write no table.
func TestVPCCNIv123OnNFTablesMovesOnlyTheConnmarkRulesIntoTableAWSCNI(t *testing.T) {
	for _, c := range []struct {
		backend, version, proxy string
		native                  bool
	}{
		{spec.IptablesNFT, "v1.23", spec.KubeProxyIPTables, true},
		{spec.IptablesNFT, "v1.23.1", spec.KubeProxyNFTables, true},
		{spec.IptablesLegacy, "v1.23", spec.KubeProxyIPTables, false},
		{spec.IptablesNFT, "v1.22", spec.KubeProxyNFTables, false},
	} {
		top := loadMode(t, "pod-egress.yaml", c.proxy)
		top.Iptables, top.VPCCNI.Version = c.backend, c.version
		if errs := top.Validate(); errs != nil {
			t.Fatal(errs)
		}
		node := Build(top, "x").NS("node51")
		what := c.backend + " " + c.version + " " + c.proxy
		if got := strings.Contains(node.NFT, "table ip aws-cni {"); got != c.native {
			t.Errorf("%s: table ip aws-cni written %v, want %v", what, got, c.native)
		}
		if got := strings.Contains(node.Iptables, "AWS-CONNMARK-CHAIN-0") || strings.Contains(node.Iptables, `"AWS, CONNMARK"`); got == c.native {
			t.Errorf("%s: iptables connmark rules present %v, want %v", what, got, !c.native)
		}
		for _, kept := range []string{"-j AWS-SNAT-CHAIN-0", "-j SNAT --to-source 192.168.1.50 --random-fully", `-i eni+ -m comment --comment "AWS, primary ENI"`} {
			if !strings.Contains(node.Iptables, kept) {
				t.Errorf("%s: iptables lost %q", what, kept)
			}
		}
		if c.proxy == spec.KubeProxyNFTables && !strings.HasPrefix(node.NFT, "add table ip kube-proxy") {
			t.Errorf("%s: kube-proxy's table is not first in the node's nft program", what)
		}
	}
}

// A node's externalSNAT and excludeSNATCIDRs reach the native table as they
// reach the iptables rules, in kube-proxy's nftables mode too.
func TestVPCCNINFTTableFollowsTheNodesSNATSettings(t *testing.T) {
	top := loadMode(t, "pod-egress.yaml", spec.KubeProxyNFTables)
	top.VPCCNI.Version = "v1.23"
	top.Nodes[0].VPCCNI = &spec.VPCCNI{ExcludeSNATCIDRs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
	top.Nodes[1].VPCCNI = &spec.VPCCNI{ExternalSNAT: true}
	p := Build(top, "x")
	n0, n1 := p.NS(top.Nodes[0].Name), p.NS(top.Nodes[1].Name)
	if !strings.Contains(n0.NFT, "\t\tcounter ip daddr 198.51.100.0/24 return\n\t\tcounter ip daddr 192.168.0.0/16 return\n") {
		t.Errorf("%s: excluded CIDR not returned before the VPC CIDR:\n%s", top.Nodes[0].Name, n0.NFT[strings.Index(n0.NFT, "table ip aws-cni"):])
	}
	if strings.Contains(n1.NFT, "aws-cni") || strings.Contains(n1.Iptables, "AWS-SNAT-CHAIN-0") {
		t.Errorf("%s: external SNAT still has the aws-cni table or the SNAT chain", top.Nodes[1].Name)
	}
}
