package plan

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func loadMode(t *testing.T, file, mode string) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/" + file)
	if err != nil {
		t.Fatal(err)
	}
	top.KubeProxy.Mode = mode
	return top
}

// In nftables mode a node's kube-proxy lives in one nft table: the node's
// iptables payload keeps kubelet's and aws-node's rules but no KUBE-SERVICES,
// and route_localnet is not set.
func TestNFTablesModeMovesKubeProxyFromIptablesToItsNFTTable(t *testing.T) {
	top := loadMode(t, "nodeport.yaml", spec.KubeProxyNFTables)
	p := Build(top, "x")
	node := p.NS(top.Nodes[0].Name)
	if !strings.HasPrefix(node.NFT, "add table ip kube-proxy") {
		t.Fatalf("node's nft program does not create kube-proxy's table:\n%.300s", node.NFT)
	}
	for _, want := range []string{"add map ip kube-proxy service-ips", "add map ip kube-proxy service-nodeports", "masquerade fully-random",
		"ip daddr { " + top.VPC.ServiceCIDR.String() + " } drop", "add element ip kube-proxy nodeport-ips { " + top.Nodes[0].ENI(0).IP.String() + " }"} {
		if !strings.Contains(node.NFT, want) {
			t.Errorf("nft program lacks %q", want)
		}
	}
	for _, gone := range []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING"} {
		if strings.Contains(node.Iptables, gone) {
			t.Errorf("iptables payload still has kube-proxy's %s", gone)
		}
	}
	for _, kept := range []string{"KUBE-KUBELET-CANARY", "-A KUBE-FIREWALL -d 127.0.0.0/8", "AWS-SNAT-CHAIN-0"} {
		if !strings.Contains(node.Iptables, kept) {
			t.Errorf("iptables payload lost %q", kept)
		}
	}
	for _, s := range node.Sysctls {
		if s.Key == routeLocalnet {
			t.Errorf("route_localnet=%s written, but nftables NodePorts never answer on localhost", s.Value)
		}
	}

	ipt := Build(loadMode(t, "nodeport.yaml", spec.KubeProxyIPTables), "x").NS(top.Nodes[0].Name)
	if ipt.NFT != "" || !strings.Contains(ipt.Iptables, "KUBE-SERVICES") {
		t.Error("iptables mode lost its kube-proxy rules or gained an nft program")
	}
}
