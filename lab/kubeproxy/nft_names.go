package kubeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	"sigs.k8s.io/knftables"
)

// Names of kube-proxy's nftables mode, as in kubernetes/kubernetes
// pkg/proxy/nftables/proxier.go (commit 531be81208e2274ef42e72525a26610a9622bcdf,
// late 2025). The table is owned entirely by kube-proxy, so nothing in it
// carries a "kube-" prefix.
const (
	// NFTTable is the table kube-proxy writes, in family ip (IPv4) or ip6.
	NFTTable = "kube-proxy"

	nftFilterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	nftFilterOutputPreDNAT     = "filter-output-pre-dnat"
	nftFilterInput             = "filter-input"
	nftFilterForward           = "filter-forward"
	nftFilterOutput            = "filter-output"
	nftNATPrerouting           = "nat-prerouting"
	nftNATOutput               = "nat-output"
	nftNATPostrouting          = "nat-postrouting"

	nftServicesChain        = "services"
	nftServiceIPsMap        = "service-ips"
	nftServiceNodePortsMap  = "service-nodeports"
	nftNodePortIPsSet       = "nodeport-ips"
	nftClusterIPsSet        = "cluster-ips"
	nftServiceEndpointsChk  = "service-endpoints-check"
	nftNodePortEndpointsChk = "nodeport-endpoints-check"
	nftNoEndpointServices   = "no-endpoint-services"
	nftNoEndpointNodePorts  = "no-endpoint-nodeports"
	nftRejectChain          = "reject-chain"
	nftClusterIPsCheck      = "cluster-ips-check"
	nftFirewallIPsMap       = "firewall-ips"
	nftFirewallCheck        = "firewall-check"
	nftMarkMasqChain        = "mark-for-masquerade"
	nftMasqueradingChain    = "masquerading"
)

// Prefixes of the per-service and per-endpoint objects (proxier.go).
const (
	nftPrefixService  = "service-"  // Cluster traffic policy
	nftPrefixLocal    = "local-"    // Local traffic policy
	nftPrefixExternal = "external-" // NodePort / external IP / LB entry
	nftPrefixEndpoint = "endpoint-"
	nftPrefixAffinity = "affinity-" // ClientIP affinity set of an endpoint
	nftPrefixFirewall = "firewall-" // loadBalancerSourceRanges
)

// nftChainNameBaseMax is upstream's chainNameBaseLengthMax: nft's name limit
// minus room for the longest prefix.
const nftChainNameBaseMax = knftables.NameLengthMax - 16

// nftHashAndTruncate is upstream's hashAndTruncate: the first 8 base32
// characters of sha256(name), "-", name; cut to nftChainNameBaseMax with
// "..." (the hash keeps a cut name unique).
func nftHashAndTruncate(name string) string {
	sum := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	if len(name) > nftChainNameBaseMax {
		name = name[:nftChainNameBaseMax-3] + "..."
	}
	return name
}

// NFTServicePortChainNameBase is upstream's servicePortChainNameBase:
// "HASH-namespace/name/protocol/portName", e.g. "ULMVA6XW-ns1/svc1/tcp/p80".
// The service-, local-, external- and firewall- chains of a port share it.
// protocol is lower-cased, as upstream always passes it.
func NFTServicePortChainNameBase(namespace, name, protocol, portName string) string {
	return nftHashAndTruncate(namespace + "/" + name + "/" + strings.ToLower(protocol) + "/" + portName)
}

// NFTEndpointChainNameBase is upstream's servicePortEndpointChainNameBase:
// "HASH-namespace/name/protocol/portName__ip/port", e.g.
// "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80". The colons of an IPv6
// address become dots (nft names may not hold ':'). endpointIP is the bare
// address, without brackets.
func NFTEndpointChainNameBase(namespace, name, protocol, portName, endpointIP, endpointPort string) string {
	endpointIP = strings.ReplaceAll(endpointIP, ":", ".")
	return nftHashAndTruncate(namespace + "/" + name + "/" + strings.ToLower(protocol) + "/" + portName +
		"__" + endpointIP + "/" + endpointPort)
}

// isNFTServiceChainName is upstream's isServiceChainName: only the
// per-service and per-endpoint chains contain '/', so stale-chain cleanup
// can never touch a fixed chain.
func isNFTServiceChainName(chain string) bool {
	return strings.Contains(chain, "/")
}

// isNFTAffinitySetName is upstream's isAffinitySetName.
func isNFTAffinitySetName(set string) bool {
	return strings.HasPrefix(set, nftPrefixAffinity)
}
