package walk

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/spec"
)

// Service is the Service port a walk addresses, with kube-proxy's chains.
type Service struct {
	Namespace, Name string
	Port            uint16
	Protocol        string
	IP              netip.Addr
	NodePort        uint16
	Local           bool // externalTrafficPolicy Local
	SVCChain        string
	ExtChain        string
	port            corev1.ServicePort
	// nft: kube-proxy runs in nftables mode; the notes name its chains.
	nft bool
}

// kube-proxy's names in a walk's notes, per mode: the iptables chains, or
// the nftables mode's (kubernetes pkg/proxy/nftables/proxier.go).
func (s *Service) dispatch() string {
	if s.nft {
		return "services"
	}
	return "KUBE-SERVICES"
}

func (s *Service) nodePorts() string {
	if s.nft {
		return "services vmap @service-nodeports"
	}
	return "KUBE-NODEPORTS"
}

func (s *Service) masquerade() string {
	if s.nft {
		return "mark-for-masquerade, masquerading"
	}
	return "KUBE-MARK-MASQ, KUBE-POSTROUTING"
}

func (s *Service) hairpinNote() string {
	if s.nft {
		return "so the endpoint chain jumps to mark-for-masquerade and masquerading masquerades it"
	}
	return "so KUBE-SEP marks it and KUBE-POSTROUTING masquerades it"
}

func (s *Service) localDropNote() string {
	if s.nft {
		return "filter-input nodeport-endpoints-check: vmap @no-endpoint-nodeports drop (externalTrafficPolicy Local, no local endpoint), nothing goes further"
	}
	return "filter KUBE-EXTERNAL-SERVICES: \"has no local endpoints\" -j DROP (externalTrafficPolicy Local), nothing goes further"
}

// ServiceOf resolves a walk's Service port (kube-dns for a dns walk), or nil.
func ServiceOf(t *spec.Topology, w spec.Walk) *Service {
	ref := w.Service
	port := w.Port
	if w.Kind == spec.WalkDNS {
		ref, port = "kube-system/kube-dns", 53
	}
	if ref == "" {
		return nil
	}
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = spec.DefaultNamespace, ref
	}
	for _, s := range t.Manifests.Services {
		if s.Namespace != ns || s.Name != name {
			continue
		}
		for _, p := range s.Spec.Ports {
			if int(p.Port) != port || !strings.EqualFold(string(p.Protocol), w.Protocol) {
				continue
			}
			ip, _ := netip.ParseAddr(s.Spec.ClusterIP)
			spn := kubeproxy.ServicePortName(ns, name, p.Name)
			proto := strings.ToLower(string(p.Protocol))
			svc := &Service{Namespace: ns, Name: name, Port: uint16(p.Port), Protocol: proto, IP: ip,
				NodePort: uint16(p.NodePort), port: p,
				Local:    s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
				SVCChain: string(kubeproxy.ServicePortChainName(spn, proto)),
				ExtChain: string(kubeproxy.ServiceExternalChainName(spn, proto))}
			if t.NFTablesMode() {
				base := kubeproxy.NFTServicePortChainNameBase(ns, name, proto, p.Name)
				svc.nft, svc.SVCChain, svc.ExtChain = true, "service-"+base, "external-"+base
			}
			return svc
		}
	}
	return nil
}

// SEPChain is kube-proxy's chain for one endpoint of the port.
func (s *Service) SEPChain(ip netip.Addr, port uint16) string {
	if s.nft {
		return "endpoint-" + kubeproxy.NFTEndpointChainNameBase(s.Namespace, s.Name, s.Protocol, s.port.Name, ip.String(), fmt.Sprint(port))
	}
	spn := kubeproxy.ServicePortName(s.Namespace, s.Name, s.port.Name)
	return string(kubeproxy.ServicePortEndpointChainName(spn, s.Protocol, fmt.Sprintf("%s:%d", ip, port)))
}

// TargetPort is the port the endpoint pod listens on.
func (s *Service) TargetPort(p *spec.Pod) int {
	if p == nil {
		return 0
	}
	return spec.ServicePortTarget(s.port, *p)
}

// Frontend is the address a client sends to: the ClusterIP, or the via
// node's primary IP for a NodePort walk.
func (s *Service) Frontend(t *spec.Topology, w spec.Walk) Endpoint {
	if w.Via != "" {
		return nodeEndpoint(t, w.Via)
	}
	return Endpoint{Object: s.Namespace + "/" + s.Name, IP: s.IP}
}

// Dest is the walk's destination address and port.
func (s *Service) Dest(t *spec.Topology, w spec.Walk) netip.AddrPort {
	if w.Via != "" {
		return netip.AddrPortFrom(nodeEndpoint(t, w.Via).IP, s.NodePort)
	}
	return netip.AddrPortFrom(s.IP, s.Port)
}

// Endpoints are the pods behind the walk's Service port, by address.
func (s *Service) Endpoints(t *spec.Topology) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, sp := range cluster.Endpoints(t) {
		if sp.Service.Namespace == s.Namespace && sp.Service.Name == s.Name && uint16(sp.Port.Port) == s.Port &&
			strings.EqualFold(string(sp.Port.Protocol), s.Protocol) {
			for _, e := range sp.Endpoints {
				out[e.IP] = e.Pod
			}
		}
	}
	return out
}

// CandidatePoints is every capture point of a Service walk, whichever
// endpoint the kernel picks: the client, every endpoint, the via node.
func CandidatePoints(t *spec.Topology, w spec.Walk, s *Service) []Point {
	var ends []Endpoint
	if from, err := endpointOf(t, w.From); err == nil {
		ends = append(ends, from)
	}
	for _, pod := range s.Endpoints(t) {
		if e, err := endpointOf(t, pod); err == nil {
			ends = append(ends, e)
		}
	}
	if w.Via != "" {
		ends = append(ends, nodeEndpoint(t, w.Via))
	}
	return capturePoints(t, ends...)
}
