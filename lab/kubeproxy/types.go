package kubeproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ServicePort is one port of one Service together with its endpoints: the
// unit kube-proxy renders chains for (its ServicePortName key). It carries
// only what the iptables proxier reads, with no Kubernetes API types, so the
// lab can build it from its own topology model.
type ServicePort struct {
	Namespace string
	Name      string
	// PortName is the Service port's name; empty for an unnamed port, which
	// drops the ":port" part from ServicePortName and so changes the hashes.
	PortName string
	// Protocol is TCP, UDP or SCTP (any case).
	Protocol string
	// ClusterIP of the Service. An invalid (zero) address means a headless
	// Service, which kube-proxy does not program, so it is skipped.
	ClusterIP netip.Addr
	// Port is the Service port (what clients dial on the ClusterIP).
	Port int32
	// NodePort is 0 when the Service has none (ClusterIP type, or a
	// NodePort/LoadBalancer Service with allocateLoadBalancerNodePorts=false).
	NodePort int32
	// ExternalIPs are spec.externalIPs, in spec order.
	ExternalIPs []netip.Addr
	// LoadBalancerIPs are the status.loadBalancer.ingress IPs kube-proxy
	// treats as VIPs. Leave out ingress entries with ipMode: Proxy; upstream
	// excludes them from LoadBalancerVIPs().
	LoadBalancerIPs []netip.Addr
	// LoadBalancerSourceRanges are spec.loadBalancerSourceRanges as written
	// by the user. Like kube-proxy they are trimmed, parsed leniently
	// (leading zeros allowed), masked, and dropped if unparsable or of the
	// other IP family.
	LoadBalancerSourceRanges []string
	// ExternalPolicyLocal is externalTrafficPolicy: Local. It only has an
	// effect when the port is externally accessible (NodePort, LB IPs or
	// external IPs), exactly as apiservice.ExternalPolicyLocal.
	ExternalPolicyLocal bool
	// InternalPolicyLocal is internalTrafficPolicy: Local.
	InternalPolicyLocal bool
	// SessionAffinityClientIP is sessionAffinity: ClientIP.
	SessionAffinityClientIP bool
	// StickyMaxAgeSeconds is sessionAffinityConfig.clientIP.timeoutSeconds;
	// 0 means the API default of 10800.
	StickyMaxAgeSeconds int
	// HealthCheckNodePort is spec.healthCheckNodePort. kube-proxy only honours
	// it for externalTrafficPolicy: Local, so it is ignored otherwise.
	HealthCheckNodePort int32
	// Endpoints of this port, from the Service's EndpointSlices. Order does
	// not matter: like kube-proxy's EndpointsMap they are sorted by "ip:port".
	Endpoints []Endpoint
}

// Endpoint is one EndpointSlice endpoint of a ServicePort.
type Endpoint struct {
	IP   netip.Addr
	Port int32
	// Local means the endpoint's nodeName is this node.
	Local bool
	// Ready, Serving and Terminating are the EndpointSlice conditions (with
	// the API's nil defaults already applied). Ready endpoints are used;
	// serving+terminating ones only as a fallback when none is ready.
	Ready       bool
	Serving     bool
	Terminating bool
	// ZoneHints are the endpoint's hints.forZones, comma-separated ("" for
	// none); the EndpointSlice controllers set one zone. A string keeps
	// Endpoint comparable. See HasZoneHint.
	ZoneHints string
}

// HasZoneHint reports whether the endpoint is hinted for zone.
func (e Endpoint) HasZoneHint(zone string) bool {
	for h := e.ZoneHints; h != ""; {
		var z string
		z, h, _ = strings.Cut(h, ",")
		if z == zone {
			return true
		}
	}
	return false
}

// String is the endpoint as kube-proxy formats it, net.JoinHostPort(ip,
// port): "10.0.0.1:80", "[fd00::1]:80".
func (e Endpoint) String() string {
	ip := e.IP.Unmap().WithZone("")
	b := make([]byte, 0, 48)
	if ip.Is6() {
		b = append(b, '[')
		b = ip.AppendTo(b)
		b = append(b, ']')
	} else {
		b = ip.AppendTo(b)
	}
	b = append(b, ':')
	return string(strconv.AppendInt(b, int64(e.Port), 10))
}

// String is the port's ServicePortName, "namespace/name:port".
func (sp *ServicePort) String() string {
	return ServicePortName(sp.Namespace, sp.Name, sp.PortName)
}

// equal reports whether two ServicePorts would render the same rules; every
// field counts (TestServicePortEqualSeesEveryField keeps it so).
func (sp *ServicePort) equal(o *ServicePort) bool {
	return sp.Namespace == o.Namespace && sp.Name == o.Name && sp.PortName == o.PortName &&
		sp.Protocol == o.Protocol && sp.ClusterIP == o.ClusterIP && sp.Port == o.Port &&
		sp.NodePort == o.NodePort && slices.Equal(sp.ExternalIPs, o.ExternalIPs) &&
		slices.Equal(sp.LoadBalancerIPs, o.LoadBalancerIPs) &&
		slices.Equal(sp.LoadBalancerSourceRanges, o.LoadBalancerSourceRanges) &&
		sp.ExternalPolicyLocal == o.ExternalPolicyLocal && sp.InternalPolicyLocal == o.InternalPolicyLocal &&
		sp.SessionAffinityClientIP == o.SessionAffinityClientIP && sp.StickyMaxAgeSeconds == o.StickyMaxAgeSeconds &&
		sp.HealthCheckNodePort == o.HealthCheckNodePort && slices.Equal(sp.Endpoints, o.Endpoints)
}

// clone is a deep copy, so a caller changing its slices later cannot change
// what a Proxier remembers.
func (sp *ServicePort) clone() ServicePort {
	c := *sp
	c.ExternalIPs = slices.Clone(sp.ExternalIPs)
	c.LoadBalancerIPs = slices.Clone(sp.LoadBalancerIPs)
	c.LoadBalancerSourceRanges = slices.Clone(sp.LoadBalancerSourceRanges)
	c.Endpoints = slices.Clone(sp.Endpoints)
	return c
}

// externallyAccessible mirrors BaseServicePortInfo.ExternallyAccessible.
func (sp *ServicePort) externallyAccessible() bool {
	return sp.NodePort != 0 || len(sp.LoadBalancerIPs) > 0 || len(sp.ExternalIPs) > 0
}

// Config is the per-node kube-proxy configuration the rules depend on. One
// Config describes one IP family, as kube-proxy runs one proxier per family.
type Config struct {
	// NodeName is informational; locality comes from Endpoint.Local.
	NodeName string
	// Zone is the node's topology.kubernetes.io/zone label; "" means none,
	// so zone hints are never used (kubernetes pkg/proxy/topology.go).
	Zone string
	// NodeIPs are this node's addresses. The first one of the proxier's
	// family is kube-proxy's nodeIP (used by loadBalancerSourceRanges);
	// all of them are candidates for NodePortAddresses.
	NodeIPs []netip.Addr
	// IPv6 selects the IPv6 proxier (ip6tables). Services, endpoints and
	// addresses of the other family are ignored, as upstream does.
	IPv6 bool
	// ClusterCIDR is kube-proxy's --cluster-cidr for the ClusterCIDR local
	// traffic detector; a comma-separated dual-stack list is accepted. Empty
	// (or no CIDR of this family) gives the no-op detector: no off-cluster
	// masquerade rule and no pod short-circuit in KUBE-EXT chains.
	ClusterCIDR string
	// MasqueradeMark is the value written for KUBE-MARK-MASQ. Empty means
	// kube-proxy's default "0x00004000" (bit 14); upstream unit tests use
	// "0x4000". See MasqueradeMarkForBit.
	MasqueradeMark string
	// MasqueradeAll is --masquerade-all: mark all ClusterIP traffic.
	MasqueradeAll bool
	// RandomFully adds --random-fully to MASQUERADE (iptables >= 1.6.2).
	RandomFully bool
	// LocalhostNodePorts is --iptables-localhost-nodeports (upstream default
	// true): NodePorts answer on 127.0.0.1 and KUBE-FIREWALL is written. It is
	// forced off on IPv6 and when NodePortAddresses excludes 127.0.0.1.
	LocalhostNodePorts bool
	// NodePortAddresses is --nodeport-addresses. Empty matches every local
	// address (one "--dst-type LOCAL" rule); otherwise one rule per NodeIP
	// inside these prefixes.
	NodePortAddresses []netip.Prefix
	// NFAcct adds kube-proxy's nfacct counter matches. Only set it when the
	// nfacct objects ct_state_invalid_dropped_pkts and
	// localhost_nps_accepted_pkts exist, or the restore fails.
	NFAcct bool
	// ConntrackTCPLiberal omits the INVALID-state drop in KUBE-FORWARD, as
	// kube-proxy does when nf_conntrack_tcp_be_liberal is set.
	ConntrackTCPLiberal bool
}

// DefaultMasqueradeMark is what production kube-proxy writes: bit 14
// formatted with "%#08x".
const DefaultMasqueradeMark = "0x00004000"

// defaultStickySeconds is the API default of clientIP.timeoutSeconds.
const defaultStickySeconds = 10800

// MasqueradeMarkForBit formats --iptables-masquerade-bit exactly as
// kube-proxy does, fmt "%#08x" of 1<<bit: bit 14 gives "0x00004000" (eight
// hex digits; the "0x" does not count toward the width).
func MasqueradeMarkForBit(bit int) string {
	return fmt.Sprintf("%#08x", uint32(1)<<uint(bit))
}
