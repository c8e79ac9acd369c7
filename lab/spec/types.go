// Package spec is the lab's topology model: the YAML a user writes, parsed
// strictly, validated completely before anything touches the kernel, and the
// deterministic names and addresses derived from it. It is pure Go and builds
// on any OS, so all of it is unit-tested without root.
package spec

import (
	"fmt"
	"net/netip"
)

// Topology is one lab description: a VPC with subnets in AZs, nodes with
// ENIs, pods on those ENIs, hosts outside the cluster, and the walks that
// prove its data path.
type Topology struct {
	// Name defaults to the file's base name; the lab is named after it.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	VPC         VPC    `yaml:"vpc"`
	AZs         []AZ   `yaml:"azs"`
	Nodes       []Node `yaml:"nodes"`
	Pods        []Pod  `yaml:"pods"`
	Hosts       []Host `yaml:"hosts"`
	// Internet is the world outside the VPC, reached through its internet
	// gateway. Nil means the VPC has no internet gateway.
	Internet *Internet `yaml:"internet"`
	// RouteTables are the VPC's custom route tables; a subnet names one
	// (routeTable) or uses the main table (default route to the internet
	// gateway). See natgw.go.
	RouteTables []SubnetRouteTable `yaml:"routeTables"`
	// NATGateways are public NAT gateways, each in a subnet with an
	// Elastic IP; a route table sends a private subnet's traffic to one.
	NATGateways []NATGateway `yaml:"natGateways"`
	// ControlPlane is the EKS control plane (see controlplane.go); nil
	// means the lab builds none.
	ControlPlane *ControlPlane `yaml:"controlPlane"`
	Walks        []Walk        `yaml:"walks"`
	// Iptables is the nodes' iptables backend: "nft" (default, as on AL2023
	// nodes; walk --explain needs it) or "legacy" (as on AL2 nodes).
	Iptables string `yaml:"iptables"`
	// KubeProxy is kube-proxy's configuration on every node.
	KubeProxy KubeProxy `yaml:"kubeProxy"`
	// VPCCNI is the Amazon VPC CNI release whose node rules the lab writes.
	VPCCNI VPCCNI `yaml:"vpcCNI"`
	// LoadBalancerController says whether the AWS Load Balancer Controller
	// is installed (default true): it owns LoadBalancer Services and ALB
	// Ingresses. Without it only the legacy controller's NLB is built.
	LoadBalancerController *bool `yaml:"loadBalancerController"`
	// ClusterDNS adds EKS's CoreDNS (kube-dns on .10 of the service CIDR);
	// it defaults to true when the file holds Kubernetes manifests.
	ClusterDNS *bool `yaml:"clusterDNS"`

	// Manifests are the Kubernetes documents after the lab document.
	Manifests Manifests `yaml:"-"`

	// File is where the topology came from, for error messages.
	File string `yaml:"-"`
	// Source is the text it was parsed from (comments and all): a lab
	// keeps it, so walks and status work without the original file.
	Source []byte `yaml:"-"`
	// lines maps a YAML path such as "nodes[1].enis[0].ip" to its line.
	lines map[string]int
}

// VPC is the address space and the settings every node shares.
type VPC struct {
	CIDR netip.Prefix `yaml:"cidr"`
	// MTU of ENIs and pod veths; the VPC CNI's default is 9001.
	MTU int `yaml:"mtu"`
	// PrefixDelegation mirrors ENABLE_PREFIX_DELEGATION: ENIs carry /28
	// prefixes and pods take /32s out of them.
	PrefixDelegation bool `yaml:"prefixDelegation"`
	// ServiceCIDR defaults as EKS picks it: 172.20.0.0/16 when the VPC is in
	// 10.0.0.0/8, else 10.100.0.0/16.
	ServiceCIDR netip.Prefix `yaml:"serviceCIDR"`
}

// AZ is an availability zone; its subnets become bridges on the VPC router.
type AZ struct {
	Name    string   `yaml:"name"`
	Subnets []Subnet `yaml:"subnets"`
}

// Subnet is one VPC subnet. Its gateway is base+1, as in AWS.
type Subnet struct {
	Name string       `yaml:"name"`
	CIDR netip.Prefix `yaml:"cidr"`
	// Role is the subnet tag the AWS Load Balancer Controller discovers
	// load balancer subnets by: "elb" (kubernetes.io/role/elb, public) or
	// "internal-elb" (kubernetes.io/role/internal-elb).
	Role string `yaml:"role"`
	// RouteTable names one of the topology's routeTables; "" is the main
	// table (0.0.0.0/0 to the internet gateway).
	RouteTable string `yaml:"routeTable"`
	// AZ is filled in from the enclosing AZ.
	AZ string `yaml:"-"`
}

// Node is a worker instance (an EC2 instance with the VPC CNI).
type Node struct {
	Name string `yaml:"name"`
	// InstanceType sets the ENI and per-ENI IPv4 limits EC2 enforces.
	InstanceType string `yaml:"instanceType"`
	ENIs         []ENI  `yaml:"enis"`
	// VPCCNI overrides the lab-wide aws-node SNAT settings on this node
	// (externalSNAT, excludeSNATCIDRs; not version).
	VPCCNI *VPCCNI `yaml:"vpcCNI"`
}

// ENI is an elastic network interface, eth<Index> in the node.
type ENI struct {
	// Index is the EC2 device index; eth0 is 0. Defaults to the list position.
	Index  *int       `yaml:"index"`
	Subnet string     `yaml:"subnet"`
	IP     netip.Addr `yaml:"ip"`
	// SecondaryIPs are handed to pods. Pod IPs not listed here are added.
	SecondaryIPs []netip.Addr `yaml:"secondaryIPs"`
	// Prefixes are /28s delegated to the ENI (prefix delegation mode).
	Prefixes []netip.Prefix `yaml:"prefixes"`
}

// Pod is a pod placed on a node and one of its ENIs.
type Pod struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Node      string            `yaml:"node"`
	ENI       int               `yaml:"eni"`
	IP        netip.Addr        `yaml:"ip"`
	Labels    map[string]string `yaml:"labels"`
	// Ports the pod's app listens on besides the defaults (TCP 8080, UDP 9000).
	Ports []Port `yaml:"ports"`
	// Manifest names the Pod or Deployment a pod came from, if any.
	Manifest string `yaml:"-"`
	// Phase is set on the two pods of a pod delete in progress (ApplyChurn):
	// PodStarting for the replacement until its app listens (not Ready),
	// PodTerminating for the deleted pod until its endpoint is removed.
	// Empty: running and Ready.
	Phase string `yaml:"-" json:"-"`
}

// Pod phases during a pod delete, as its endpoints' conditions show them.
const (
	PodStarting    = "starting"    // EndpointSlice: not ready, not serving
	PodTerminating = "terminating" // EndpointSlice: not ready, serving, terminating
)

// Host is an instance outside the cluster with one ENI, such as a client
// in the VPC. It has no VPC CNI plumbing.
type Host struct {
	Name   string     `yaml:"name"`
	Subnet string     `yaml:"subnet"`
	IP     netip.Addr `yaml:"ip"`
}

// Internet is the internet side of a lab: hosts on InternetLAN behind an
// internet router, and the internet gateway's 1:1 NAT of public IPs.
type Internet struct {
	Hosts []InternetHost `yaml:"hosts"`
	// PublicIPs are Elastic IPs: the gateway maps each public address to a
	// private address in the VPC, both ways.
	PublicIPs []PublicIP `yaml:"publicIPs"`
	// DNS is a Route 53-like authoritative server on the internet.
	DNS *InternetDNS `yaml:"dns"`
}

// InternetDNS is an authoritative DNS server for the lab's public names.
type InternetDNS struct {
	Name    string        `yaml:"name"`
	IP      netip.Addr    `yaml:"ip"`
	Records []AliasRecord `yaml:"records"`
}

// AliasRecord is a Route 53 alias A record to a load balancer: it answers
// the load balancer nodes' public IPs, one per AZ, with TTL 60.
type AliasRecord struct {
	Name string `yaml:"name"`
	// Alias names the Ingress or LoadBalancer Service ("name" or
	// "namespace/name") whose load balancer the record points at.
	Alias string `yaml:"alias"`
}

// InternetHost is a machine on the internet (a client or a server).
type InternetHost struct {
	Name string     `yaml:"name"`
	IP   netip.Addr `yaml:"ip"`
}

// PublicIP is one 1:1 NAT mapping at the internet gateway.
type PublicIP struct {
	Private netip.Addr `yaml:"private"`
	Public  netip.Addr `yaml:"public"`
}

// Addresses of the lab's internet, all from the documentation ranges.
var (
	// InternetLAN holds internet hosts, the internet router (.1) and the
	// gateway's internet side (.2).
	InternetLAN = netip.MustParsePrefix("198.51.100.0/24")
	// PublicRange holds the Elastic IPs the gateway translates.
	PublicRange = netip.MustParsePrefix("203.0.113.0/24")
	// GatewayLink joins the VPC router and the internet gateway inside the
	// fabric (link-local, never seen outside the lab).
	GatewayLink = netip.MustParsePrefix("169.254.255.0/30")
)

// Reserved object names of the internet side.
const (
	GatewayName  = "igw"
	InternetName = "internet"
)

// Walk is a packet walk the lab can prove. Its hops are not written here:
// they are derived from the roles of From and To (which ENI, which node,
// which subnet), so the same walk holds on any address plan.
type Walk struct {
	Name  string `yaml:"name"`
	Title string `yaml:"title"`
	// Kind is "state" (the A0 check of pod and node plumbing), "flow" (send
	// traffic From -> To and check every hop), "dns" (resolve Query through
	// the cluster DNS and check the query's hops), "spread" (many connections
	// to a Service: every endpoint must answer) or "churn" (replace a
	// Service's pod while its address keeps answering). Defaults to flow.
	Kind     string `yaml:"kind"`
	From     string `yaml:"from"`
	To       string `yaml:"to"`
	Protocol string `yaml:"protocol"` // icmp, tcp or udp
	// Port is the destination port: the Service port when Service is set.
	Port int `yaml:"port"`
	// Service sends to a Service ("name" or "namespace/name") instead of To:
	// its ClusterIP, or with Via, a node's NodePort.
	Service string `yaml:"service"`
	// Via is the node whose primary IP and NodePort the client uses.
	Via string `yaml:"via"`
	// Query is the name a dns walk resolves, with the pod's search path.
	Query string `yaml:"query"`
	// Connections a spread or churn walk opens (default 60).
	Connections int `yaml:"connections"`
	// Expect is "answer" (default) or "drop": the flow must die at the
	// last hop listed, as at a node without a local endpoint.
	Expect string `yaml:"expect"`
	// LoadBalancer sends through a load balancer: the Service (NLB) or
	// Ingress (ALB) name, "name" or "namespace/name".
	LoadBalancer string `yaml:"loadBalancer"`
	// AZ is the load balancer node the client uses (default: the first AZ).
	AZ string `yaml:"az"`
	// Path is the HTTP path an ALB walk requests.
	Path string `yaml:"path"`
	// DNSName makes the client resolve this name at the internet's
	// authoritative DNS first and send to an address it answered (walk D1).
	DNSName string `yaml:"dnsName"`
}

// VPCCNI names the aws-node release the lab models.
type VPCCNI struct {
	// Version is "v1.16" to "v1.23" (a patch, "v1.22.4", is accepted and
	// ignored); it defaults to DefaultVPCCNIVersion. From v1.23 aws-node
	// writes its nat connmark rules as a native "table ip aws-cni" on
	// nf_tables nodes (VPCCNIConnmark).
	Version string `yaml:"version"`
	// ExternalSNAT is AWS_VPC_K8S_CNI_EXTERNALSNAT: aws-node writes no
	// SNAT (no AWS-SNAT-CHAIN-0, no nat connmark chain), so pod traffic
	// leaves the node with the pod's IP and a NAT gateway translates it.
	ExternalSNAT bool `yaml:"externalSNAT"`
	// ExcludeSNATCIDRs is AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: destinations
	// that, like the VPC CIDR, keep the pod's IP (RETURN in both chains).
	ExcludeSNATCIDRs []netip.Prefix `yaml:"excludeSNATCIDRs"`
}

// DefaultVPCCNIVersion is the newest release whose rules are iptables rules
// on both backends.
const DefaultVPCCNIVersion = "v1.22"

// VPCCNIMinor returns the minor release of a VPC CNI version ("v1.22.4"
// gives 22), or an error naming what the lab models.
func VPCCNIMinor(version string) (int, error) {
	var minor, patch int
	n, _ := fmt.Sscanf(version, "v1.%d.%d", &minor, &patch)
	if n < 1 || (version != fmt.Sprintf("v1.%d", minor) && version != fmt.Sprintf("v1.%d.%d", minor, patch)) ||
		minor < 16 || minor > 23 {
		return 0, fmt.Errorf("VPC CNI version %q: use v1.16 to v1.23 (the iptables layout of #2697 on)", version)
	}
	return minor, nil
}

// ValidateVPCCNI checks a VPC CNI version. Every modelled version runs on
// both backends: v1.16 to v1.22 write iptables rules through the node's
// iptables, v1.23 moves its nat connmark rules into a native nft table on
// nf_tables nodes (VPCCNIConnmark). Older releases (a different iptables
// layout, before #2697) and newer ones (not yet read) are refused.
func ValidateVPCCNI(c VPCCNI) error {
	_, err := VPCCNIMinor(c.Version)
	return err
}

// Where aws-node holds its nat connmark rules (VPCCNIConnmark).
const (
	ConnmarkIptablesLegacy = "iptables-legacy"
	ConnmarkIptablesNFT    = "iptables-nft"
	// ConnmarkNFTTable is v1.23+ on nf_tables nodes: "table ip aws-cni",
	// chains nat-prerouting (nat hook prerouting, priority -90) and
	// snat-mark (aws/amazon-vpc-cni-k8s v1.23.0,
	// pkg/networkutils/nftables_connmark.go).
	ConnmarkNFTTable = "nft table ip aws-cni"
)

// VPCCNIConnmark says where aws-node of a version keeps its nat connmark
// rules on a node with the given iptables backend. v1.23 picks the backend
// from `iptables --version` (pkg/iptableswrapper GetIptablesMode,
// NewConnmark): nf_tables gets the native table, legacy keeps
// AWS-CONNMARK-CHAIN-0. Its SNAT chain and mangle rules stay iptables
// rules on both (pkg/networkutils/network.go, buildIptablesSNATRules).
func VPCCNIConnmark(version, backend string) string {
	if backend == IptablesLegacy {
		return ConnmarkIptablesLegacy
	}
	if minor, err := VPCCNIMinor(version); err == nil && minor >= 23 {
		return ConnmarkNFTTable
	}
	return ConnmarkIptablesNFT
}

// VPCCNINFTTable says whether the lab's nodes hold aws-node's native
// "table ip aws-cni".
func (t *Topology) VPCCNINFTTable() bool {
	return VPCCNIConnmark(t.VPCCNI.Version, t.Iptables) == ConnmarkNFTTable
}

// KubeProxy is the part of kube-proxy's configuration the lab varies.
type KubeProxy struct {
	// Mode is kube-proxy's --proxy-mode: "iptables" (default, as the EKS
	// add-on runs it) or "nftables" (kubernetes pkg/proxy/nftables, GA in
	// v1.33: one "ip kube-proxy" table written with nft -f).
	Mode string `yaml:"mode"`
}

// kube-proxy modes.
const (
	KubeProxyIPTables = "iptables"
	KubeProxyNFTables = "nftables"
)

// NFTablesMode says whether the nodes' kube-proxy runs in nftables mode.
func (t *Topology) NFTablesMode() bool { return t.KubeProxy.Mode == KubeProxyNFTables }

// iptables backends.
const (
	IptablesNFT    = "nft"
	IptablesLegacy = "legacy"
)

// Walk kinds.
const (
	WalkFlow   = "flow"
	WalkState  = "state"
	WalkDNS    = "dns"
	WalkSpread = "spread"
	WalkChurn  = "churn"
)

// Defaults the VPC CNI and EKS apply.
const (
	DefaultMTU          = 9001
	DefaultInstanceType = "m5.large"
	DefaultNamespace    = "default"
	// AppTCPPort is where every pod's app answers HTTP.
	AppTCPPort = 8080
	// AppUDPPort is where every pod's app answers UDP echo.
	AppUDPPort = 9000
)
