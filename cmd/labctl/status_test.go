package main

import (
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
