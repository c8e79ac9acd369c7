//go:build linux

package run

import (
	"fmt"
	"sort"

	"github.com/labctl/labctl/lab/capture"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// crossAZDuring runs send while capturing at every VPC router port that
// has an AZ, and counts what send's requests (by walk token) moved between
// AZs (walk.SpreadCrossAZ).
func (s *Session) crossAZDuring(lbs *lb.Model, send func()) (walk.CrossAZ, int, error) {
	azs := walk.PortAZs(s.Topo, lbs)
	ports := make([]string, 0, len(azs))
	for p := range azs {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	pts := make([]walk.Point, len(ports))
	for i, p := range ports {
		pts[i] = walk.Point{Object: spec.RouterName, Iface: p}
	}
	caps, err := capture.OpenAll(s.NS, pts)
	if err != nil {
		return walk.CrossAZ{}, 0, err
	}
	defer caps.Close()
	send()
	frames, err := caps.Drain()
	if err != nil {
		return walk.CrossAZ{}, 0, err
	}
	c, crossed := walk.SpreadCrossAZ(azs, decodeFrames(frames))
	return c, crossed, nil
}

// podSpreadEndpoints marks which of a Service port's endpoints kube-proxy
// on the client pod's node may send to (cluster.PodTraffic: topology hints
// and internalTrafficPolicy), and says why when that is not all of them.
func podSpreadEndpoints(t *spec.Topology, sp cluster.ServicePort, node string) ([]SpreadEndpoint, string, []string) {
	picks, verdict := cluster.PodTraffic(t, sp, node)
	may := map[string]bool{}
	for _, e := range picks {
		may[e.Pod] = true
	}
	var out []SpreadEndpoint
	hinted := false
	for _, e := range sp.Endpoints {
		out = append(out, SpreadEndpoint{Pod: e.Pod, Node: e.Node, AZ: e.Zone, Local: e.Node == node, Excluded: !may[e.Pod]})
		hinted = hinted || e.ZoneHint != ""
	}
	var notes []string
	if sp.HintsDisabled != "" {
		notes = append(notes, "the EndpointSlice controller set no hints (TopologyAwareHintsDisabled: "+sp.HintsDisabled+")")
	}
	zone := cluster.NodeZone(t, node)
	local := sp.Service.Spec.InternalTrafficPolicy != nil && *sp.Service.Spec.InternalTrafficPolicy == "Local"
	rule := ""
	switch {
	case verdict != "":
		rule = fmt.Sprintf("kube-proxy on %s has no endpoint to use and answers %s", node, verdict)
	case local:
		rule = fmt.Sprintf("internalTrafficPolicy Local: kube-proxy on %s uses only its own endpoints", node)
	case hinted && len(picks) < len(sp.Endpoints):
		rule = fmt.Sprintf("kube-proxy on %s uses only the endpoints hinted for %s", node, zone)
	case hinted:
		notes = append(notes, fmt.Sprintf("no endpoint is hinted for %s (or one lacks a hint): kube-proxy on %s falls back to every endpoint", zone, node))
	}
	return out, rule, notes
}

// lbSpreadEndpoints are the pods that may answer a spread through a load
// balancer node: with ip targets, the targets in the node's AZ (all of
// them with cross-zone on); with instance targets, the endpoints kube-proxy
// on a reachable node uses for external traffic: its own with
// externalTrafficPolicy Local (only nodes with one pass the health check),
// any otherwise.
func lbSpreadEndpoints(t *spec.Topology, l *lb.LoadBalancer, g *lb.TargetGroup, node lb.Node) ([]SpreadEndpoint, string) {
	var out []SpreadEndpoint
	if g.TargetType == lb.TargetIP {
		for _, tg := range g.Targets {
			on := tg.AZ
			if p := t.Pod(tg.Object); p != nil {
				on = p.Node
			}
			out = append(out, SpreadEndpoint{Pod: tg.Object, Node: on, AZ: tg.AZ, Local: tg.AZ == node.AZ,
				Excluded: !g.CrossZone && tg.AZ != node.AZ})
		}
		if !g.CrossZone {
			return out, fmt.Sprintf("cross-zone is off: the %s node reaches only the targets in its AZ", node.AZ)
		}
		return out, ""
	}
	svc := cluster.ServiceByName(t, ownerName(l.Owner))
	var eps []cluster.Endpoint
	for _, sp := range cluster.Endpoints(t) {
		if svc != nil && sp.Service == svc {
			eps = sp.Endpoints
			break
		}
	}
	local := svc != nil && svc.Spec.ExternalTrafficPolicy == "Local"
	hasLocal := map[string]bool{}
	for _, e := range eps {
		hasLocal[e.Node] = hasLocal[e.Node] || e.Ready()
	}
	reach := map[string]bool{}
	for _, tg := range g.Targets {
		if (g.CrossZone || tg.AZ == node.AZ) && (!local || hasLocal[tg.Object]) {
			reach[tg.Object] = true
		}
	}
	for _, e := range eps {
		may := !local || reach[e.Node]
		if !local && len(reach) == 0 {
			may = false
		}
		out = append(out, SpreadEndpoint{Pod: e.Pod, Node: e.Node, AZ: e.Zone, Local: e.Zone == node.AZ, Excluded: !may})
	}
	if local {
		return out, fmt.Sprintf("externalTrafficPolicy Local: only nodes with an endpoint pass the health check, and each sends to its own (%s node, cross-zone %v)",
			node.AZ, g.CrossZone)
	}
	return out, ""
}

// ownerName turns a load balancer's owner ("Service ns/name") into "ns/name".
func ownerName(owner string) string {
	for i := 0; i < len(owner); i++ {
		if owner[i] == ' ' {
			return owner[i+1:]
		}
	}
	return owner
}
