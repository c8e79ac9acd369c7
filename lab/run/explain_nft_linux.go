//go:build linux

package run

import (
	"fmt"
	"os/exec"

	"github.com/labctl/labctl/lab/walk"
)

// NFTList runs `nft list <what...>` in an object's namespace.
func (s *Session) NFTList(obj string, what ...string) (string, error) {
	h, err := s.NS(obj)
	if err != nil {
		return "", err
	}
	var out []byte
	err = h.Do(func() error {
		out, err = exec.Command("nft", append([]string{"list"}, what...)...).CombinedOutput()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("nft list %v in %s: %w: %s", what, h.Name, err, out)
	}
	return string(out), nil
}

// nftStopped names, on a node in nftables mode where a Service walk
// stopped, the element kube-proxy's service-ips verdict map lacks for the
// walk's Service port: the packet then matches no Service chain, is not
// translated, and cluster-ips-check rejects it (a ClusterIP with no such
// port).
func (s *Session) nftStopped(dec string, r *walk.Report) []string {
	if !s.Topo.NFTablesMode() || s.Topo.Node(dec) == nil || r.Expectation == nil {
		return nil
	}
	svc := walk.ServiceOf(s.Topo, r.Expectation.Walk)
	if svc == nil || r.Expectation.Walk.Via != "" {
		return nil
	}
	key := fmt.Sprintf("%s . %s . %d", svc.IP, svc.Protocol, svc.Port)
	listing, err := s.NFTList(dec, "map", "ip", kubeProxyTable, "service-ips")
	if err != nil {
		return []string{"where it stopped: " + dec + ": " + err.Error()}
	}
	if NFTMapHasElement(listing, key) {
		return nil
	}
	return []string{fmt.Sprintf("where it stopped: %s: kube-proxy's verdict map service-ips (table ip kube-proxy) has no element %s "+
		"for Service %s/%s: the packet matches no Service chain (%s), is never DNATed, and cluster-ips-check rejects it",
		dec, key, svc.Namespace, svc.Name, svc.SVCChain)}
}
