package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// Kernel is what the node software would learn by probing the node's
// kernel, which this pure package cannot do: the caller probes and passes
// it in. The zero value is a kernel without the optional features.
type Kernel struct {
	// NFAcct says nfnetlink_acct works in the node's namespace. kube-proxy
	// v1.30+ then creates the nfacct objects ct_state_invalid_dropped_pkts
	// and localhost_nps_accepted_pkts and adds "-m nfacct" matches to two
	// rules (kubernetes pkg/proxy/iptables/proxier.go, NewProxier:
	// nfacct.New() and Ensure; a failure just leaves them out). The caller
	// must create both objects in each node before the restore, or it fails:
	// kernel.ApplyProbed does both, in each node's namespace.
	NFAcct bool
}

// kube-proxy's conntrack settings in the EKS add-on's kube-proxy-config
// (conntrack: maxPerCore 32768, min 131072, tcpEstablishedTimeout 24h0m0s,
// tcpCloseWaitTimeout 1h0m0s), which are also kube-proxy's v1alpha1
// defaults (kubernetes pkg/proxy/apis/config/v1alpha1/defaults.go).
// kube-proxy writes them at start (cmd/kube-proxy/app/conntrack.go).
const (
	ConntrackMaxPerCore           = 32768
	ConntrackMin                  = 131072
	ConntrackTCPEstablishedSecond = 24 * 60 * 60
	ConntrackTCPCloseWaitSecond   = 60 * 60
)

// HostWideSysctls are the keys the real node software writes that are not
// per network namespace, so the lab never writes them: nf_conntrack_max is
// read-only outside the initial namespace (nf_conntrack_standalone.c), and
// the hash size kube-proxy writes with it is a module parameter
// (/sys/module/nf_conntrack/parameters/hashsize).
var HostWideSysctls = []string{"net/netfilter/nf_conntrack_max"}

// conntrackSysctls are kube-proxy's per-namespace conntrack writes. They
// exist once nf_conntrack is loaded, which the node's restore ensures.
func conntrackSysctls() []Sysctl {
	return []Sysctl{
		{Key: "net/netfilter/nf_conntrack_tcp_timeout_established", Value: fmt.Sprint(ConntrackTCPEstablishedSecond), AfterIptables: true},
		{Key: "net/netfilter/nf_conntrack_tcp_timeout_close_wait", Value: fmt.Sprint(ConntrackTCPCloseWaitSecond), AfterIptables: true},
	}
}

// amiRPFilter is rp_filter as the AL2023 EKS AMI leaves it: the AMI's own
// sysctl files (amazon-eks-ami templates/al2023/runtime/rootfs/etc/sysctl.d)
// do not touch it, so systemd's /usr/lib/sysctl.d/50-default.conf decides:
// "net.ipv4.conf.default.rp_filter = 2", "net.ipv4.conf.*.rp_filter = 2"
// (re-applied by udev to every new interface) and "-net.ipv4.conf.all.rp_filter",
// which leaves all at the kernel's 0 (users moving to AL2023 report that
// default=0 no longer reaches new interfaces: aws-samples/
// aws-gateway-load-balancer-tunnel-handler issue 23). A lab namespace
// instead copies the host's values (devconf_inherit_init_net), so they are
// written.
const (
	amiRPFilterAll = "0"
	amiRPFilterIf  = "2"
)

// nodeSysctls are written before links come up; they do not depend on the
// host the lab runs on.
func nodeSysctls(enis []spec.ENI) []Sysctl {
	s := []Sysctl{
		// AL2023 EKS AMI, etc/sysctl.d/99-kubernetes-cri.conf.
		{Key: "net/ipv4/ip_forward", Value: "1"},
		{Key: "net/bridge/bridge-nf-call-iptables", Value: "1", Optional: true},
		{Key: "net/bridge/bridge-nf-call-ip6tables", Value: "1", Optional: true},
		// Two ENIs on one subnet: answer ARP only for the ENI's own address,
		// as EC2 answers ARP per ENI (the lab's choice; no AWS software writes it).
		{Key: "net/ipv4/conf/all/arp_ignore", Value: "1"},
		{Key: "net/ipv4/conf/all/arp_announce", Value: "2"},
		// kube-proxy sets it for localhost NodePorts (localhostNodePorts=true).
		{Key: routeLocalnet, Value: "1"},
		// aws-vpc-cni-init (cmd/aws-vpc-cni-init/main.go): tcp_early_demux
		// on unless DISABLE_TCP_EARLY_DEMUX.
		{Key: "net/ipv4/tcp_early_demux", Value: "1"},
		// Kernel defaults the AMI keeps; a host with other values must not
		// leak them into the node.
		{Key: "net/ipv4/conf/all/send_redirects", Value: "1"},
		{Key: "net/ipv4/conf/default/send_redirects", Value: "1"},
		{Key: "net/ipv4/conf/all/accept_local", Value: "0"},
		{Key: "net/ipv4/conf/all/rp_filter", Value: amiRPFilterAll},
		{Key: "net/ipv4/conf/default/rp_filter", Value: amiRPFilterIf},
		{Key: "net/ipv4/conf/lo/rp_filter", Value: amiRPFilterIf},
	}
	for _, e := range enis {
		// Every ENI is loose: systemd's wildcard, and for eth0 also
		// aws-vpc-cni-init ("net/ipv4/conf/<primary>/rp_filter" = 2), which
		// NodePort and SNAT replies to pods on secondary ENIs need.
		s = append(s, Sysctl{Key: "net/ipv4/conf/" + spec.ENIName(*e.Index) + "/rp_filter", Value: amiRPFilterIf})
	}
	return append(s, conntrackSysctls()...)
}

// routeLocalnet is the key kube-proxy's iptables mode sets for localhost
// NodePorts (kubernetes pkg/proxy/iptables/proxier.go, NewProxier).
const routeLocalnet = "net/ipv4/conf/all/route_localnet"

// KubeletFirewall is kubelet's KUBE-FIREWALL chain on an IPv4 node
// (kubernetes pkg/kubelet/kubelet_network_linux.go, syncIPTablesRules): the
// martian-localhost drop, jumped to from INPUT and OUTPUT. In iptables mode
// kube-proxy's payload carries an identical copy; in nftables mode only
// kubelet writes it.
func KubeletFirewall() string {
	return "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n" +
		"-A INPUT -j KUBE-FIREWALL\n-A OUTPUT -j KUBE-FIREWALL\n" +
		`-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP` + "\n" +
		"COMMIT\n"
}

// KubeletChains are the chains kubelet ensures on an IPv4 node
// (kubernetes pkg/kubelet/kubelet_network_linux.go, syncIPTablesRules and
// its Monitor): KUBE-IPTABLES-HINT in mangle, telling other components which
// iptables backend the node uses, and the canary KUBE-KUBELET-CANARY in
// mangle, nat and filter. kubelet's KUBE-FIREWALL rule and its jumps are the
// same as kube-proxy's, which its -C check finds, so they are not repeated.
func KubeletChains() string {
	return "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n" +
		"*nat\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n" +
		"*filter\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n"
}

// connmarkReturnComment is the comment on the VPC CIDR's RETURN rule in
// AWS-CONNMARK-CHAIN-0: v1.16 to v1.22 write "AWS CONNMARK CHAIN, VPC CIDR"
// (pkg/networkutils/network.go, buildIptablesConnmarkRules); v1.23 moved
// the rules to pkg/networkutils/iptables_connmark.go with the short
// comment, used only on iptables-legacy nodes.
func connmarkReturnComment(version string) string {
	if minor, err := spec.VPCCNIMinor(version); err == nil && minor >= 23 {
		return "AWS CONNMARK CHAIN"
	}
	return "AWS CONNMARK CHAIN, VPC CIDR"
}

// VPCCNIRules is the iptables-restore payload aws-node of the given VPC CNI
// version ("" for spec.DefaultVPCCNIVersion) installs on a node with default
// settings (SNAT on, NodePort support on, prng random SNAT) when all its
// rules are iptables rules (v1.16 to v1.22, or v1.23 on iptables-legacy;
// VPCCNINode picks by backend), in iptables-save form so a dump of the
// node diffs cleanly against it.
func VPCCNIRules(vpc netip.Prefix, nodeIP netip.Addr, primaryIF, version string) string {
	return VPCCNIRulesWith(vpc, nodeIP, primaryIF, spec.VPCCNI{Version: version})
}

// VPCCNIRulesWith is VPCCNIRules with aws-node's SNAT settings:
// AWS_VPC_K8S_CNI_EXTERNALSNAT drops the SNAT chain and the nat connmark
// chain (UpdateHostSNATRules, connmark.Cleanup), and each of
// AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS is one more RETURN in both chains,
// inserted at position 1 so they read in reverse order
// (aws/amazon-vpc-cni-k8s pkg/networkutils/network.go, v1.16+).
func VPCCNIRulesWith(vpc netip.Prefix, nodeIP netip.Addr, primaryIF string, c spec.VPCCNI) string {
	return vpcCNIRules(vpc, nodeIP, primaryIF, c, true)
}

// VPCCNINode is what aws-node writes on a node with the given iptables
// backend: its iptables-restore payload and, for v1.23+ on nf_tables, its
// native table (VPCCNINFTTable; "" otherwise). There the payload keeps the
// mangle rules and the SNAT chain (pkg/networkutils/network.go,
// buildIptablesSNATRules, unchanged in v1.23) but not AWS-CONNMARK-CHAIN-0
// and its two nat PREROUTING rules, which nftConnmark.Setup removes
// (cleanupIptablesConnmarkRules).
func VPCCNINode(vpc netip.Prefix, nodeIP netip.Addr, primaryIF, backend string, c spec.VPCCNI) (iptables, nft string) {
	if c.Version == "" {
		c.Version = spec.DefaultVPCCNIVersion
	}
	if spec.VPCCNIConnmark(c.Version, backend) != spec.ConnmarkNFTTable {
		return vpcCNIRules(vpc, nodeIP, primaryIF, c, true), ""
	}
	return vpcCNIRules(vpc, nodeIP, primaryIF, c, false), VPCCNINFTTable([]netip.Prefix{vpc}, c)
}

// vpcCNIRules writes the payload; connmark false leaves out the nat
// connmark chain and its jumps (v1.23+ keeps them in nft).
func vpcCNIRules(vpc netip.Prefix, nodeIP netip.Addr, primaryIF string, c spec.VPCCNI, connmark bool) string {
	version := c.Version
	if version == "" {
		version = spec.DefaultVPCCNIVersion
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("*mangle")
	w(":PREROUTING ACCEPT [0:0]")
	w(`-A PREROUTING -i %s -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80`, primaryIF)
	w(`-A PREROUTING -i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80`)
	w(`-A PREROUTING -i vlan+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80`)
	w("COMMIT")
	w("*nat")
	w(":PREROUTING ACCEPT [0:0]")
	w(":POSTROUTING ACCEPT [0:0]")
	if c.ExternalSNAT {
		w("COMMIT")
		return b.String()
	}
	if connmark {
		w(":AWS-CONNMARK-CHAIN-0 - [0:0]")
	}
	w(":AWS-SNAT-CHAIN-0 - [0:0]")
	if connmark {
		w(`-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0`)
		w(`-A PREROUTING -m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80`)
	}
	w(`-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0`)
	if connmark {
		for i := len(c.ExcludeSNATCIDRs) - 1; i >= 0; i-- {
			w(`-A AWS-CONNMARK-CHAIN-0 %s-m comment --comment "%s" -j RETURN`, dstMatch(c.ExcludeSNATCIDRs[i]), connmarkReturnComment(version))
		}
		w(`-A AWS-CONNMARK-CHAIN-0 -d %s -m comment --comment "%s" -j RETURN`, vpc, connmarkReturnComment(version))
		w(`-A AWS-CONNMARK-CHAIN-0 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80`)
	}
	for i := len(c.ExcludeSNATCIDRs) - 1; i >= 0; i-- {
		w(`-A AWS-SNAT-CHAIN-0 %s-m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN`, dstMatch(c.ExcludeSNATCIDRs[i]))
	}
	w(`-A AWS-SNAT-CHAIN-0 -d %s -m comment --comment "AWS SNAT CHAIN" -j RETURN`, vpc)
	w(`-A AWS-SNAT-CHAIN-0 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source %s --random-fully`, nodeIP)
	w("COMMIT")
	return b.String()
}

// dstMatch is "-d <cidr> ", or nothing for 0.0.0.0/0, which aws-node
// writes without -d.
func dstMatch(p netip.Prefix) string {
	if p.Bits() == 0 {
		return ""
	}
	return "-d " + p.String() + " "
}
