package walk

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// The D2 hop that leaves the node names the rules that marked the packet:
// AWS-CONNMARK-CHAIN-0 in iptables, or aws-node v1.23's native snat-mark
// chain on nf_tables nodes, with the same NAT steps either way.
func TestD2NamesTheChainThatMarkedThePacketForTheVPCCNIVersion(t *testing.T) {
	top, err := spec.Load("../../topologies/pod-egress-nft.yaml")
	if err != nil {
		t.Fatal(err)
	}
	why := func(top *spec.Topology) (string, []string) {
		nat, _, e := natSteps(t, top, "D2")
		for _, h := range e.Hops {
			if strings.Contains(h.Why, "marks it 0x80") {
				return h.Why, nat
			}
		}
		t.Fatalf("no hop says who marks the packet")
		return "", nil
	}
	native, natNative := why(top)
	if !strings.Contains(native, "table ip aws-cni chain snat-mark") {
		t.Errorf("v1.23 on nft: %q does not name the native chain", native)
	}
	top.VPCCNI.Version = "v1.22"
	old, natOld := why(top)
	if !strings.Contains(old, "AWS-CONNMARK-CHAIN-0") {
		t.Errorf("v1.22: %q does not name AWS-CONNMARK-CHAIN-0", old)
	}
	if strings.Join(natNative, ";") != strings.Join(natOld, ";") || len(natNative) == 0 {
		t.Errorf("NAT steps differ: %q against %q", natNative, natOld)
	}
}
