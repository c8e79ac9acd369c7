package spec

import "testing"

func TestVPCCNIVersionDefaultsToV122(t *testing.T) {
	top, err := parse(t, good)
	if err != nil {
		t.Fatal(err)
	}
	if top.VPCCNI.Version != DefaultVPCCNIVersion || DefaultVPCCNIVersion != "v1.22" {
		t.Errorf("vpcCNI.version %q, want the default v1.22", top.VPCCNI.Version)
	}
}

// v1.23 on nf_tables nodes is allowed: aws-node builds its native table
// there (the lab renders it), and a version outside v1.16-v1.23 is refused
// at its line.
func TestVPCCNIv123IsAcceptedOnBothBackendsAndOthersAreRejectedAtTheirLine(t *testing.T) {
	for _, y := range []string{"vpcCNI: {version: v1.23}\n", "iptables: legacy\nvpcCNI: {version: v1.23.1}\n"} {
		if _, err := parse(t, y+good); err != nil {
			t.Errorf("%q: %v", y, err)
		}
	}
	mustFail(t, "vpcCNI: {version: v1.24}\n"+good, "t.yaml:1", "vpcCNI.version", "v1.16 to v1.23")
}

func TestVPCCNIVersionsOutsideTheModelledOnesAreRefused(t *testing.T) {
	for _, c := range []struct {
		version string
		ok      bool
	}{
		{"v1.22", true}, {"v1.16.0", true}, {"v1.23", true}, {"v1.23.1", true},
		{"v1.15", false}, {"v1.24", false},
		{"1.22", false}, {"v1.22x", false}, {"v1.22.", false}, {"", false},
	} {
		err := ValidateVPCCNI(VPCCNI{Version: c.version})
		if (err == nil) != c.ok {
			t.Errorf("%q: error %v, want ok=%v", c.version, err, c.ok)
		}
	}
}

// aws-node v1.23 picks its connmark backend from the node's iptables
// (aws/amazon-vpc-cni-k8s v1.23.0 pkg/networkutils/nftables_connmark.go,
// NewConnmark): only nf_tables nodes get the native table.
func TestVPCCNIConnmarkIsTheNativeTableOnlyForV123OnNFTables(t *testing.T) {
	for _, c := range []struct{ version, backend, want string }{
		{"v1.23", IptablesNFT, ConnmarkNFTTable}, {"v1.23.1", IptablesNFT, ConnmarkNFTTable},
		{"v1.23", IptablesLegacy, ConnmarkIptablesLegacy}, {"v1.22", IptablesNFT, ConnmarkIptablesNFT},
		{"v1.16", IptablesLegacy, ConnmarkIptablesLegacy}, {"v1.22.4", IptablesNFT, ConnmarkIptablesNFT},
	} {
		if got := VPCCNIConnmark(c.version, c.backend); got != c.want {
			t.Errorf("%s on %s: %q, want %q", c.version, c.backend, got, c.want)
		}
	}
}
