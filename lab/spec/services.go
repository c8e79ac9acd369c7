package spec

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Service port ranges as the API server enforces them.
const (
	NodePortMin = 30000
	NodePortMax = 32767
)

// services checks Service manifests: what Kubernetes' API server would
// refuse, and what the lab cannot model.
func (v *validator) services() {
	t := v.t
	ips := map[netip.Addr]string{}
	nodePorts := map[int32]string{}
	for _, s := range t.Manifests.Services {
		where := objKey("Service", s.Namespace, s.Name)
		line := t.ServiceLine(s)
		bad := func(field, format string, args ...any) {
			v.addAt(line, where, field+": "+format, args...)
		}
		switch s.Spec.Type {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
		default:
			bad("spec.type", "%q is not modelled (ClusterIP, NodePort and LoadBalancer are)", s.Spec.Type)
		}
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		switch {
		case s.Spec.ClusterIP == corev1.ClusterIPNone:
			bad("spec.clusterIP", "headless Services are not modelled")
		case s.Spec.ClusterIP == "" && !v.badServiceCIDR:
			// Only allocateServiceAddrs leaves it empty: the CIDR is full.
			bad("spec.clusterIP", "labctl found no free address for it in the service CIDR %s "+
				"(it allocates from .100 upward); use a larger vpc.serviceCIDR", t.VPC.ServiceCIDR)
		case s.Spec.ClusterIP == "":
		case err != nil:
			bad("spec.clusterIP", "%v", err)
		case v.badServiceCIDR:
			// vpc.serviceCIDR is reported; every address would be blamed.
		case !t.VPC.ServiceCIDR.Contains(ip):
			bad("spec.clusterIP", "%s is outside the service CIDR %s", ip, t.VPC.ServiceCIDR)
		case ips[ip] != "":
			bad("spec.clusterIP", "%s is already the ClusterIP of %s", ip, ips[ip])
		default:
			ips[ip] = where
		}
		for _, f := range s.Spec.IPFamilies {
			if f != corev1.IPv4Protocol {
				bad("spec.ipFamilies", "only IPv4 is modelled")
			}
		}
		if len(s.Spec.Ports) == 0 {
			bad("spec.ports", "a Service needs at least one port")
		}
		selected := v.selectedPods(s)
		for i, p := range s.Spec.Ports {
			field := fmt.Sprintf("spec.ports[%d]", i)
			if p.Protocol != corev1.ProtocolTCP && p.Protocol != corev1.ProtocolUDP {
				bad(field+".protocol", "%s is not modelled (TCP and UDP are)", p.Protocol)
			}
			if p.Port < 1 || p.Port > 65535 {
				bad(field+".port", "%d is outside 1..65535", p.Port)
			}
			if p.NodePort != 0 {
				switch {
				case p.NodePort == noFreeNodePort:
					bad(field+".nodePort", "labctl found no free NodePort in %d-%d for it", NodePortMin, NodePortMax)
				case p.NodePort < NodePortMin || p.NodePort > NodePortMax:
					bad(field+".nodePort", "%d is outside the NodePort range %d-%d", p.NodePort, NodePortMin, NodePortMax)
				case nodePorts[p.NodePort] != "":
					bad(field+".nodePort", "%d is already used by %s", p.NodePort, nodePorts[p.NodePort])
				default:
					nodePorts[p.NodePort] = where
				}
			}
			if tp := p.TargetPort; tp.StrVal == "" && (tp.IntVal < 1 || tp.IntVal > 65535) {
				bad(field+".targetPort", "%d is outside 1..65535", tp.IntVal)
			}
			if name := p.TargetPort.StrVal; name != "" && len(selected) > 0 && !anyPodHasPort(selected, name, p.Protocol) {
				bad(field+".targetPort", "%q names no %s container port of the pods the selector picks (%s)",
					name, p.Protocol, podNames(selected))
			}
		}
		if hc := s.Spec.HealthCheckNodePort; hc != 0 {
			switch {
			case hc == noFreeNodePort:
				bad("spec.healthCheckNodePort", "labctl found no free NodePort in %d-%d for it", NodePortMin, NodePortMax)
			case hc < NodePortMin || hc > NodePortMax:
				bad("spec.healthCheckNodePort", "%d is outside the NodePort range %d-%d", hc, NodePortMin, NodePortMax)
			case nodePorts[hc] != "":
				bad("spec.healthCheckNodePort", "%d is already used by %s", hc, nodePorts[hc])
			}
			nodePorts[hc] = where
		}
		if len(s.Spec.Selector) > 0 && len(selected) == 0 {
			t.Manifests.Warnings = append(t.Manifests.Warnings, fmt.Sprintf("%s:%d: %s: the selector picks no pod; "+
				"the Service has no endpoints and its ClusterIP rejects connections, as in Kubernetes", t.File, line, where))
		}
		v.serviceTopology(s, bad, func(w string) {
			t.Manifests.Warnings = append(t.Manifests.Warnings, fmt.Sprintf("%s:%d: %s: %s", t.File, line, where, w))
		})
		for _, w := range unmodelled(s) {
			t.Manifests.Warnings = append(t.Manifests.Warnings, fmt.Sprintf("%s:%d: %s: %s", t.File, line, where, w))
		}
	}
}

func (v *validator) selectedPods(s *corev1.Service) []Pod {
	var out []Pod
	for _, p := range v.t.Pods {
		if p.Namespace == s.Namespace && Selects(s.Spec.Selector, p.Labels) {
			out = append(out, p)
		}
	}
	return out
}

func anyPodHasPort(pods []Pod, name string, proto corev1.Protocol) bool {
	for _, p := range pods {
		for _, cp := range p.Ports {
			if cp.Name == name && cp.Protocol == string(proto) {
				return true
			}
		}
	}
	return false
}

func podNames(pods []Pod) string {
	n := make([]string, len(pods))
	for i, p := range pods {
		n[i] = p.Name
	}
	return strings.Join(n, ", ")
}

// unmodelled lists fields a Service sets that the lab reads but ignores.
func unmodelled(s *corev1.Service) []string {
	var w []string
	if s.Spec.PublishNotReadyAddresses {
		w = append(w, "spec.publishNotReadyAddresses is not modelled (every lab pod is ready)")
	}
	return w
}

// Topology aware routing's Service annotations.
const (
	AnnotationTopologyMode = "service.kubernetes.io/topology-mode"
	// AnnotationTopologyAwareHints is the deprecated name; it wins when both
	// are set.
	AnnotationTopologyAwareHints = "service.kubernetes.io/topology-aware-hints"
)

// serviceTopology checks the fields that keep traffic in its zone or node:
// the values the API server refuses (kubernetes pkg/apis/core/validation,
// ValidateService: trafficDistribution and internalTrafficPolicy are enums)
// are errors; the combinations the EndpointSlice controller or kube-proxy
// silently ignore are warnings.
func (v *validator) serviceTopology(s *corev1.Service, bad func(field, format string, args ...any), warn func(string)) {
	if itp := s.Spec.InternalTrafficPolicy; itp != nil && *itp != corev1.ServiceInternalTrafficPolicyCluster &&
		*itp != corev1.ServiceInternalTrafficPolicyLocal {
		bad("spec.internalTrafficPolicy", "Unsupported value: %q: supported values: \"Cluster\", \"Local\"", *itp)
	}
	td := s.Spec.TrafficDistribution
	if td != nil {
		switch *td {
		case corev1.ServiceTrafficDistributionPreferClose, corev1.ServiceTrafficDistributionPreferSameZone:
		case corev1.ServiceTrafficDistributionPreferSameNode:
			bad("spec.trafficDistribution", "PreferSameNode (node hints) is not modelled; use PreferClose or PreferSameZone")
		default:
			bad("spec.trafficDistribution", "Unsupported value: %q: supported values: \"PreferClose\", \"PreferSameZone\", \"PreferSameNode\"", *td)
		}
	}
	mode, key := s.Annotations[AnnotationTopologyAwareHints], AnnotationTopologyAwareHints
	if _, ok := s.Annotations[key]; !ok {
		mode, key = s.Annotations[AnnotationTopologyMode], AnnotationTopologyMode
	}
	auto := mode == "Auto" || mode == "auto"
	switch {
	case auto && td != nil:
		warn(fmt.Sprintf("spec.trafficDistribution %s is ignored: with %s: %s the EndpointSlice controller sets the topology cache's hints instead",
			*td, key, mode))
	case !auto && mode != "" && mode != "Disabled" && mode != "disabled":
		warn(fmt.Sprintf("%s: %q is not \"Auto\" or \"auto\": the EndpointSlice controller sets no hints for it", key, mode))
	}
	local := s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	if local && (auto || td != nil) {
		warn("internalTrafficPolicy: Local: kube-proxy sends traffic from pods to this node's endpoints only, so zone hints " +
			"never apply to it (they still apply to external traffic with externalTrafficPolicy Cluster)")
	}
}

// ServicePortTarget resolves a Service port's targetPort for one pod: a
// number as is, a name through the pod's container ports (0 if it has none).
func ServicePortTarget(p corev1.ServicePort, pod Pod) int {
	if p.TargetPort.StrVal == "" {
		return int(p.TargetPort.IntVal)
	}
	for _, cp := range pod.Ports {
		if cp.Name == p.TargetPort.StrVal && cp.Protocol == string(p.Protocol) {
			return cp.Port
		}
	}
	return 0
}
