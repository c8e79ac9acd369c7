package spec

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// LBAddrs are the addresses load balancer nodes take in a subnet with an
// ELB role, lowest first: the lowest free ones after the lab document's own
// addresses (ENIs, their secondary IPs, hosts, pods with a written address),
// one per load balancer the manifests may ask for. Addresses the lab hands
// out itself (Deployment replicas, Pod manifests without labctl.dev/ip,
// replacements after a pod delete) never take one, so a pod never gets a
// load balancer's address and a re-sync after churn never moves a load
// balancer: one allocator, in nextFree, knows them all.
func (t *Topology) LBAddrs(s Subnet) []netip.Addr {
	if s.Role == "" {
		return nil
	}
	n := len(t.Manifests.Ingresses)
	for _, svc := range t.Manifests.Services {
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	fixed := t.instanceAddrs()
	for _, p := range t.Pods {
		if t.writtenAddr(p) {
			fixed[p.IP] = true
		}
	}
	var out []netip.Addr
	for a := s.CIDR.Masked().Addr(); s.CIDR.Contains(a) && len(out) < n; a = a.Next() {
		if !fixed[a] && !Reserved(s.CIDR, a) {
			out = append(out, a)
		}
	}
	return out
}

// writtenAddr says whether a pod's address is written in the file (the
// pods list, or a Pod manifest's labctl.dev/ip) rather than handed out.
func (t *Topology) writtenAddr(p Pod) bool {
	switch {
	case p.Manifest == "":
		return true
	case strings.HasPrefix(p.Manifest, "Pod "):
		for _, m := range t.Manifests.Pods {
			if objKey("Pod", m.Namespace, m.Name) == p.Manifest {
				return m.Annotations[AnnotationIP] != ""
			}
		}
	}
	return false
}
