package kubeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

// Table is an iptables table name, as written after '*' in a restore payload.
type Table string

// Tables kube-proxy writes to.
const (
	TableFilter Table = "filter"
	TableNAT    Table = "nat"
	TableMangle Table = "mangle"
)

// Chain is an iptables chain name.
type Chain string

// The fixed chains of kube-proxy's iptables mode (proxier.go constants).
const (
	ChainServices         Chain = "KUBE-SERVICES"          // filter + nat
	ChainExternalServices Chain = "KUBE-EXTERNAL-SERVICES" // filter
	ChainNodePorts        Chain = "KUBE-NODEPORTS"         // filter + nat
	ChainPostrouting      Chain = "KUBE-POSTROUTING"       // nat
	ChainMarkMasq         Chain = "KUBE-MARK-MASQ"         // nat
	ChainForward          Chain = "KUBE-FORWARD"           // filter
	ChainProxyFirewall    Chain = "KUBE-PROXY-FIREWALL"    // filter
	ChainProxyCanary      Chain = "KUBE-PROXY-CANARY"      // mangle, nat, filter; always empty
	ChainKubeletFirewall  Chain = "KUBE-FIREWALL"          // filter; duplicate of kubelet's
)

// Prefixes of the per-service and per-endpoint chains. Stale-chain cleanup
// only ever deletes chains carrying one of them, so it never touches chains
// that belong to someone else.
const (
	prefixSVC = "KUBE-SVC-"
	prefixSVL = "KUBE-SVL-"
	prefixEXT = "KUBE-EXT-"
	prefixFW  = "KUBE-FW-"
	prefixSEP = "KUBE-SEP-"
)

// ServicePortName formats kube-proxy's ServicePortName string,
// "namespace/name:port", or "namespace/name" when the port is unnamed. It is
// both the hash input of the chain names and the text of most rule comments.
func ServicePortName(namespace, name, portName string) string {
	if portName == "" {
		return namespace + "/" + name
	}
	return namespace + "/" + name + ":" + portName
}

// PortProtoHash is kube-proxy's portProtoHash: the first 16 characters of
// base32(sha256(servicePortName + protocol)). Hashing keeps chain names under
// iptables' 28-character limit. protocol is lower-cased first, as kube-proxy
// always passes it lower-case.
func PortProtoHash(servicePortName, protocol string) string {
	h := hash16(servicePortName, protocol, "")
	return string(h[:])
}

// hash16 is the first 16 base32 characters of sha256(a + lower(b) + c),
// built without intermediate strings (chain names are computed for every
// service and endpoint on every sync).
func hash16(a, b, c string) [16]byte {
	var buf [192]byte
	in := append(buf[:0], a...)
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		in = append(in, ch)
	}
	in = append(in, c...)
	sum := sha256.Sum256(in)
	var enc [56]byte // base32 of 32 bytes
	base32.StdEncoding.Encode(enc[:], sum[:])
	return [16]byte(enc[:16])
}

// chainName is prefix + hash, in one allocation.
func chainName(prefix string, hash [16]byte) Chain {
	b := make([]byte, 0, len(prefix)+len(hash))
	return Chain(append(append(b, prefix...), hash[:]...))
}

// ServicePortChainName is the KUBE-SVC-<hash> chain: endpoint dispatch for
// "Cluster" traffic policy.
func ServicePortChainName(servicePortName, protocol string) Chain {
	return chainName(prefixSVC, hash16(servicePortName, protocol, ""))
}

// ServicePortPolicyLocalChainName is the KUBE-SVL-<hash> chain: endpoint
// dispatch for "Local" traffic policy (this node's endpoints only).
func ServicePortPolicyLocalChainName(servicePortName, protocol string) Chain {
	return chainName(prefixSVL, hash16(servicePortName, protocol, ""))
}

// ServiceExternalChainName is the KUBE-EXT-<hash> chain, the entry point for
// NodePort, externalIP and load-balancer traffic.
func ServiceExternalChainName(servicePortName, protocol string) Chain {
	return chainName(prefixEXT, hash16(servicePortName, protocol, ""))
}

// ServiceFirewallChainName is the KUBE-FW-<hash> chain that implements
// loadBalancerSourceRanges.
func ServiceFirewallChainName(servicePortName, protocol string) Chain {
	return chainName(prefixFW, hash16(servicePortName, protocol, ""))
}

// ServicePortEndpointChainName is the KUBE-SEP-<hash> chain of one endpoint;
// endpoint is "ip:port" as net.JoinHostPort writes it ("[fd00::1]:80").
func ServicePortEndpointChainName(servicePortName, protocol, endpoint string) Chain {
	return chainName(prefixSEP, hash16(servicePortName, protocol, endpoint))
}

// IsServiceChainName reports whether chain is one of kube-proxy's
// per-service or per-endpoint chains (isServiceChainName upstream), which
// are the only chains stale-chain cleanup may delete.
func IsServiceChainName(chain Chain) bool {
	s := string(chain)
	for _, p := range []string{prefixSVC, prefixSVL, prefixSEP, prefixFW, prefixEXT} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
