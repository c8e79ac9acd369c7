package walk

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// natNotes joins the NAT notes and reasons of an expectation's hops.
func natNotes(t *testing.T, file, mode, walk, endpoint string) string {
	t.Helper()
	top, err := spec.Load("../../topologies/" + file)
	if err != nil {
		t.Fatal(err)
	}
	top.KubeProxy.Mode = mode
	for _, pd := range top.Pods {
		if endpoint == "" && pd.Labels["app"] == "web" {
			endpoint = pd.Name
		}
	}
	e, err := Derive(top, *top.Walk(walk), 40000, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, h := range e.Hops {
		b.WriteString(h.NAT + "\n" + h.Why + "\n")
	}
	return b.String()
}

// The hops do not depend on kube-proxy's mode, but the notes name the
// mode's chains: nftables' service-/endpoint- chains, never KUBE-*.
func TestNATNotesNameTheChainsOfKubeProxysMode(t *testing.T) {
	for _, c := range []struct{ file, walk, endpoint, nft, ipt string }{
		{"clusterip.yaml", "B1", "", "(services -> service-", "(KUBE-SERVICES -> KUBE-SVC-"},
		{"nodeport.yaml", "B3", "", "(services vmap @service-nodeports -> external-", "(KUBE-NODEPORTS -> KUBE-EXT-"},
		{"nodeport-local.yaml", "B3-local-drop", "", "vmap @no-endpoint-nodeports drop", "KUBE-EXTERNAL-SERVICES"},
	} {
		nft := natNotes(t, c.file, spec.KubeProxyNFTables, c.walk, c.endpoint)
		if !strings.Contains(nft, c.nft) || strings.Contains(nft, "KUBE-") {
			t.Errorf("%s %s in nftables mode: notes lack %q or name KUBE- chains:\n%s", c.file, c.walk, c.nft, nft)
		}
		if ipt := natNotes(t, c.file, spec.KubeProxyIPTables, c.walk, c.endpoint); !strings.Contains(ipt, c.ipt) {
			t.Errorf("%s %s in iptables mode: notes lack %q:\n%s", c.file, c.walk, c.ipt, ipt)
		}
	}
}
