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

func TestVPCCNIv123OnNFTablesIsRejectedAtItsLine(t *testing.T) {
	mustFail(t, "vpcCNI: {version: v1.23}\n"+good, "t.yaml:1", "vpcCNI.version", "native nft table")
	if _, err := parse(t, "iptables: legacy\nvpcCNI: {version: v1.23.1}\n"+good); err != nil {
		t.Errorf("v1.23.1 on legacy: %v", err)
	}
}

func TestVPCCNIVersionIsCheckedAgainstTheBackend(t *testing.T) {
	for _, c := range []struct {
		version, backend string
		ok               bool
	}{
		{"v1.22", IptablesNFT, true}, {"v1.16.0", IptablesLegacy, true}, {"v1.23", IptablesLegacy, true},
		{"v1.23.1", IptablesNFT, false}, {"v1.15", IptablesNFT, false}, {"v1.24", IptablesLegacy, false},
		{"1.22", IptablesNFT, false}, {"v1.22x", IptablesNFT, false}, {"v1.22.", IptablesNFT, false}, {"", IptablesNFT, false},
	} {
		err := ValidateVPCCNI(VPCCNI{Version: c.version}, c.backend)
		if (err == nil) != c.ok {
			t.Errorf("%q on %s: error %v, want ok=%v", c.version, c.backend, err, c.ok)
		}
	}
}
