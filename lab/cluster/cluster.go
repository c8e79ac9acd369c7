// Package cluster is the lab's Kubernetes control plane, in pure code: the
// endpoints controller (Service selectors to ready pod IPs, per port, as
// EndpointSlices carry them), kube-proxy's view of those endpoints from each
// node, and the cluster DNS records.
package cluster

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/spec"
)

// Domain is the cluster domain EKS uses.
const Domain = "cluster.local"

// Endpoint is one ready pod behind a Service port.
type Endpoint struct {
	Pod  string
	Node string
	IP   netip.Addr
	Port int
	// Phase is the pod's (spec.PodStarting, spec.PodTerminating, or empty
	// for running); the EndpointSlice conditions follow from it.
	Phase string
	// Zone is the endpoint's zone (its node's AZ).
	Zone string
	// ZoneHint is hints.forZones[0].name as the EndpointSlice controller
	// sets it (see setHints); "" for none.
	ZoneHint string
}

// Ready: the endpoint takes new connections (EndpointSlice ready).
func (e Endpoint) Ready() bool { return e.Phase == "" }

// Serving: the pod's app answers (ready, or terminating but still up).
func (e Endpoint) Serving() bool { return e.Phase != spec.PodStarting }

// Terminating: the pod is being deleted.
func (e Endpoint) Terminating() bool { return e.Phase == spec.PodTerminating }

// ServicePort is one port of a Service with its endpoints.
type ServicePort struct {
	Service   *corev1.Service
	Port      corev1.ServicePort
	ClusterIP netip.Addr
	Endpoints []Endpoint
	// HintsDisabled is the topology cache's TopologyAwareHintsDisabled event
	// message when topology-mode Auto sets no hints; "" otherwise.
	HintsDisabled string
}

// Name is kube-proxy's service port name, "ns/name:port".
func (sp ServicePort) Name() string {
	return fmt.Sprintf("%s/%s:%s", sp.Service.Namespace, sp.Service.Name, sp.Port.Name)
}

// Endpoints runs the endpoints controller over the whole topology: every
// pod in the lab is ready, and a pod whose container ports lack a named
// targetPort is left out, as the EndpointSlice controller does.
func Endpoints(t *spec.Topology) []ServicePort {
	var out []ServicePort
	svcs := append([]*corev1.Service(nil), t.Manifests.Services...)
	sort.Slice(svcs, func(i, j int) bool { return key(svcs[i]) < key(svcs[j]) })
	for _, s := range svcs {
		ip, _ := netip.ParseAddr(s.Spec.ClusterIP)
		for _, p := range s.Spec.Ports {
			sp := ServicePort{Service: s, Port: p, ClusterIP: ip}
			for _, pod := range t.Pods {
				if pod.Namespace != s.Namespace || !spec.Selects(s.Spec.Selector, pod.Labels) {
					continue
				}
				if port := spec.ServicePortTarget(p, pod); port != 0 {
					sp.Endpoints = append(sp.Endpoints, Endpoint{Pod: pod.Name, Node: pod.Node, IP: pod.IP, Port: port, Phase: pod.Phase,
						Zone: NodeZone(t, pod.Node)})
				}
			}
			sort.Slice(sp.Endpoints, func(i, j int) bool {
				return fmt.Sprintf("%s:%d", sp.Endpoints[i].IP, sp.Endpoints[i].Port) <
					fmt.Sprintf("%s:%d", sp.Endpoints[j].IP, sp.Endpoints[j].Port)
			})
			setHints(t, &sp)
			out = append(out, sp)
		}
	}
	return out
}

func key(s *corev1.Service) string { return s.Namespace + "/" + s.Name }

// ProxyConfig is kube-proxy's configuration on an EKS node: the add-on's
// defaults (masquerade bit 14, no masquerade-all, an empty clusterCIDR so no
// local-traffic detector, --random-fully since iptables supports it).
func ProxyConfig(t *spec.Topology, node string) kubeproxy.Config {
	n := t.Node(node)
	var ips []netip.Addr
	for _, e := range n.ENIs {
		ips = append(ips, e.IP)
	}
	return kubeproxy.Config{NodeName: node, Zone: NodeZone(t, node), NodeIPs: ips, MasqueradeMark: kubeproxy.DefaultMasqueradeMark,
		RandomFully: true, LocalhostNodePorts: true}
}

// NFTProxyConfig is kube-proxy's configuration on a node in nftables mode:
// ProxyConfig's mark and node IPs, the cluster's Service CIDR (the "Drop
// traffic to unallocated ClusterIPs" rule), and NodePorts on the node's
// primary IP only: the nftables mode's --nodeport-addresses default is
// "primary" (kubernetes cmd/kube-proxy/app/server.go, v1.31+), which the
// EKS add-on's config does not override. localhostNodePorts and
// --random-fully are iptables-only (masquerading is always fully-random).
func NFTProxyConfig(t *spec.Topology, node string) kubeproxy.NFTConfig {
	cfg := ProxyConfig(t, node)
	cfg.LocalhostNodePorts, cfg.RandomFully = false, false
	if n := t.Node(node); n != nil && n.ENI(0) != nil {
		cfg.NodePortAddresses = []netip.Prefix{netip.PrefixFrom(n.ENI(0).IP, 32)}
	}
	return kubeproxy.NFTConfig{Config: cfg, ServiceCIDRs: []netip.Prefix{t.VPC.ServiceCIDR}}
}

// ProxyServices is what kube-proxy on node sees: every Service port with its
// endpoints, Local where the pod runs on this node.
func ProxyServices(sps []ServicePort, node string) []kubeproxy.ServicePort {
	out := make([]kubeproxy.ServicePort, 0, len(sps))
	for _, sp := range sps {
		s := sp.Service
		k := kubeproxy.ServicePort{
			Namespace: s.Namespace, Name: s.Name, PortName: sp.Port.Name, Protocol: string(sp.Port.Protocol),
			ClusterIP: sp.ClusterIP, Port: sp.Port.Port, NodePort: sp.Port.NodePort,
			ExternalPolicyLocal:      s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			InternalPolicyLocal:      s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
			SessionAffinityClientIP:  s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP,
			HealthCheckNodePort:      s.Spec.HealthCheckNodePort,
			LoadBalancerSourceRanges: s.Spec.LoadBalancerSourceRanges,
		}
		if k.SessionAffinityClientIP {
			k.StickyMaxAgeSeconds = 10800
			if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				k.StickyMaxAgeSeconds = int(*c.ClientIP.TimeoutSeconds)
			}
		}
		for _, e := range s.Spec.ExternalIPs {
			if a, err := netip.ParseAddr(e); err == nil {
				k.ExternalIPs = append(k.ExternalIPs, a)
			}
		}
		for _, e := range sp.Endpoints {
			// A starting pod has no endpoint kube-proxy sees: the endpoint
			// controller publishes it not ready, and it is skipped.
			if e.Phase == spec.PodStarting {
				continue
			}
			k.Endpoints = append(k.Endpoints, kubeproxy.Endpoint{IP: e.IP, Port: int32(e.Port), Local: e.Node == node,
				Ready: e.Ready(), Serving: e.Serving(), Terminating: e.Terminating(), ZoneHints: e.ZoneHint})
		}
		out = append(out, k)
	}
	return out
}

// DNSRecords maps every Service's names to its ClusterIP: the FQDN
// "<svc>.<ns>.svc.cluster.local." as CoreDNS's kubernetes plugin answers it.
func DNSRecords(t *spec.Topology) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for _, s := range t.Manifests.Services {
		if ip, err := netip.ParseAddr(s.Spec.ClusterIP); err == nil {
			out[FQDN(s.Name, s.Namespace)] = ip
		}
	}
	return out
}

// FQDN is a Service's DNS name, with the trailing dot.
func FQDN(name, namespace string) string {
	return strings.ToLower(fmt.Sprintf("%s.%s.svc.%s.", name, namespace, Domain))
}

// SearchPath is a pod's resolv.conf search list, as kubelet writes it.
func SearchPath(namespace string) []string {
	return []string{namespace + ".svc." + Domain, "svc." + Domain, Domain}
}

// ResolvConf is the resolv.conf kubelet gives a pod with dnsPolicy ClusterFirst.
func ResolvConf(t *spec.Topology, namespace string) string {
	return fmt.Sprintf("search %s\nnameserver %s\noptions ndots:5\n", strings.Join(SearchPath(namespace), " "), t.ClusterDNSIP())
}

// ServiceByName finds a Service by "name" (default namespace) or "ns/name".
func ServiceByName(t *spec.Topology, ref string) *corev1.Service {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = spec.DefaultNamespace, ref
	}
	for _, s := range t.Manifests.Services {
		if s.Namespace == ns && s.Name == name {
			return s
		}
	}
	return nil
}
