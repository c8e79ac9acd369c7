package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// VPCCNINFTTable is the native nftables table aws-node v1.23+ writes on an
// nf_tables node instead of its iptables nat connmark rules
// (aws/amazon-vpc-cni-k8s v1.23.0, pkg/networkutils/nftables_connmark.go,
// nftConnmark.Setup), as an `nft -f` program in the form `nft -s list table
// ip aws-cni` prints it back, so the kernel's listing diffs against it:
//
//   - nat-prerouting is a nat base chain at prerouting priority -90
//     (dstnat + 10), after kube-proxy's DNAT at -100 (#3588, issue #3563:
//     at the same priority it could mark a ClusterIP connection first). A
//     connection kube-proxy DNATs is bound there and the kernel runs no
//     later nat chain of the hook for it (nf_nat_inet_fn), so Service
//     traffic is never marked. The chain returns for local destinations
//     (fib daddr type local), jumps to snat-mark for packets from the pods'
//     veths ("eni*"), and copies the connection's 0x80 mark to the packet
//     for the routing decision (rule 1024).
//   - snat-mark returns for the VPC CIDRs and AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS
//     (Setup(append(vpcCIDRs, excludeSNATCIDRs...))) and marks the rest 0x80.
//
// Each exempt CIDR is inserted at the head of snat-mark (insertCIDRReturnRule)
// while upstream ranges over a map, so their order is not fixed upstream;
// the lab writes them reversed, as the Setup doc comment shows for
// ["10.0.0.0/8", "172.16.0.0/12"]. Upstream puts the counter before the
// match (Counter, then Payload/Bitwise/Cmp), which `nft` prints as
// "counter ip daddr ... return". With AWS_VPC_K8S_CNI_EXTERNALSNAT aws-node
// deletes the table (nftConnmark.Cleanup): the program is "".
func VPCCNINFTTable(vpcCIDRs []netip.Prefix, c spec.VPCCNI) string {
	if c.ExternalSNAT {
		return ""
	}
	exempt := append(append([]netip.Prefix{}, vpcCIDRs...), c.ExcludeSNATCIDRs...)
	const mark = 0x80 // AWS_VPC_K8S_CNI_CONNMARK's default (network.go, defaultConnmark)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("table ip aws-cni {")
	w("\tchain nat-prerouting {")
	w("\t\ttype nat hook prerouting priority dstnat + 10; policy accept;")
	w("\t\tfib daddr type local return")
	w("\t\tiifname \"eni*\" counter jump snat-mark")
	w("\t\tcounter meta mark set ct mark & 0x%08x", mark)
	w("\t}")
	w("")
	w("\tchain snat-mark {")
	for i := len(exempt) - 1; i >= 0; i-- {
		w("\t\tcounter ip daddr %s return", exempt[i])
	}
	w("\t\tcounter ct mark set ct mark | 0x%08x", mark)
	w("\t}")
	w("}")
	return b.String()
}
