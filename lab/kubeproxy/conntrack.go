package kubeproxy

import (
	"net/netip"
	"strings"
)

// UDPFlow is a UDP conntrack entry as kube-proxy's cleanup reads it: where
// the first packet was sent (the Service frontend) and who answers (the
// endpoint it was DNATed to).
type UDPFlow struct {
	OrigDst  netip.AddrPort
	ReplySrc netip.Addr
}

// StaleUDPFlows are the UDP entries kube-proxy deletes after a sync: those
// sent to a UDP Service's ClusterIP, load-balancer IP or external IP and
// port, or to its NodePort on any address, that are not answered by one of
// the port's serving endpoints. Without that, a client that keeps its
// source port (a DNS resolver's retries) stays stuck on a dead endpoint
// for as long as it keeps sending. A port with no serving endpoint is left
// alone, as upstream does. Traffic policy, topology and terminating state
// are not looked at, so a UDP flow lives exactly as long as a TCP one.
// As kubernetes/kubernetes pkg/proxy/conntrack/cleanup.go
// (CleanStaleEntries, v1.31+).
func StaleUDPFlows(ports []ServicePort, flows []UDPFlow) []UDPFlow {
	frontends := map[netip.AddrPort]map[netip.Addr]bool{}
	nodePorts := map[uint16]map[netip.Addr]bool{}
	for _, sp := range ports {
		if !strings.EqualFold(sp.Protocol, "UDP") || !sp.ClusterIP.IsValid() {
			continue
		}
		serving := map[netip.Addr]bool{}
		for _, e := range sp.Endpoints {
			if e.Serving {
				serving[e.IP] = true
			}
		}
		if len(serving) == 0 {
			continue
		}
		port := uint16(sp.Port)
		frontends[netip.AddrPortFrom(sp.ClusterIP, port)] = serving
		for _, ip := range sp.LoadBalancerIPs {
			frontends[netip.AddrPortFrom(ip, port)] = serving
		}
		for _, ip := range sp.ExternalIPs {
			frontends[netip.AddrPortFrom(ip, port)] = serving
		}
		if sp.NodePort != 0 {
			nodePorts[uint16(sp.NodePort)] = serving
		}
	}
	var stale []UDPFlow
	for _, f := range flows {
		if s, ok := frontends[f.OrigDst]; ok && !s[f.ReplySrc] {
			stale = append(stale, f)
			continue
		}
		if s, ok := nodePorts[f.OrigDst.Port()]; ok && !s[f.ReplySrc] {
			stale = append(stale, f)
		}
	}
	return stale
}
