//go:build linux

package fault

import (
	"fmt"
	"os/exec"

	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// Faults of kube-proxy's nftables mode (kubernetes pkg/proxy/nftables):
// they change table ip kube-proxy, which iptables-mode labs do not have.
func init() {
	register(&Fault{Name: "nft-service-element-missing", Topology: "clusterip-nftables", Walk: "B1", Object: "node51",
		KubeProxyMode: spec.KubeProxyNFTables,
		Summary:       "node51's service-ips verdict map lost the element for web's ClusterIP port (10.100.0.100 . tcp . 80): a partial kube-proxy sync that never finished",
		Symptom:       "pods on node51 get 'connection refused' from the web Service; pods elsewhere and the pod IPs work",
		inject:        func(s *session) error { return s.serviceElement("node51", "web", false) },
		clear:         func(s *session) error { return s.serviceElement("node51", "web", true) }})
}

// serviceElement deletes, or puts back as kube-proxy writes it, a
// Service's element of the service-ips verdict map on a node. Both ways
// are idempotent: a lab fixed by hand still clears.
func (s *session) serviceElement(node, service string, add bool) error {
	svc := walk.ServiceOf(s.Topo, spec.Walk{Service: service, Port: 80, Protocol: "tcp"})
	if svc == nil {
		return fmt.Errorf("lab %s has no Service %s with TCP port 80", s.Lab, service)
	}
	key := fmt.Sprintf("%s . %s . %d", svc.IP, svc.Protocol, svc.Port)
	listing, err := s.NFTList(node, "map", "ip", "kube-proxy", "service-ips")
	if err != nil {
		return err
	}
	if run.NFTMapHasElement(listing, key) == add {
		return nil
	}
	elem := "{ " + key + " }"
	op := "delete"
	if add {
		op, elem = "add", "{ "+key+" : goto "+svc.SVCChain+" }"
	}
	h, err := s.NS(node)
	if err != nil {
		return err
	}
	return h.Do(func() error {
		out, err := exec.Command("nft", op, "element", "ip", "kube-proxy", "service-ips", elem).CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft %s element ip kube-proxy service-ips %s in %s: %w: %s", op, elem, h.Name, err, out)
		}
		return nil
	})
}

// modeFits refuses a fault of one kube-proxy mode in a lab of the other:
// removing an iptables jump from a node that has none would "succeed" and
// break nothing.
func modeFits(f *Fault, t *spec.Topology, lab string) error {
	mode := spec.KubeProxyIPTables
	if t.NFTablesMode() {
		mode = spec.KubeProxyNFTables
	}
	if f.KubeProxyMode != "" && f.KubeProxyMode != mode {
		return fmt.Errorf("fault %s changes kube-proxy's %s rules; lab %s runs kube-proxy in %s mode (topology field kubeProxy.mode)",
			f.Name, f.KubeProxyMode, lab, mode)
	}
	return nil
}
