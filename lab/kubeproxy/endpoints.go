package kubeproxy

import (
	"slices"
	"strings"
)

// usesClusterEndpoints mirrors BaseServicePortInfo.UsesClusterEndpoints:
// Cluster endpoints are needed for iTP=Cluster, and for any externally
// accessible port (even with eTP=Local, for the short-circuit rules).
func (sp *svcPort) usesClusterEndpoints() bool {
	return !sp.internalLocal || sp.externallyAccessible
}

// usesLocalEndpoints mirrors BaseServicePortInfo.UsesLocalEndpoints.
func (sp *svcPort) usesLocalEndpoints() bool {
	return sp.internalLocal || sp.externalLocal
}

// categorized is the result of categorize.
type categorized struct {
	cluster, local, all []*epInfo
	// hasAny is true if the service has usable endpoints anywhere in the
	// cluster, even if none is reachable from this node.
	hasAny bool
}

// categorize mirrors proxy.CategorizeEndpoints (kubernetes
// pkg/proxy/topology.go at commit 008b3652959c, v1.34+): Ready endpoints
// are used, falling back to serving+terminating ones independently for the
// Cluster and Local sets; Cluster endpoints are filtered by zone hints when
// every ready endpoint has one and one is for zone (the node's zone label).
// PreferSameNode's node hints are not modelled (the lab sets none).
func categorize(sp *svcPort, zone string) categorized {
	var c categorized
	useServingTerminating := false
	useTopology := false
	if sp.usesClusterEndpoints() {
		useTopology = useZoneHints(sp.eps, zone)
		c.cluster = filterEndpoints(sp.eps, func(e *epInfo) bool {
			return e.Ready && (!useTopology || e.HasZoneHint(zone))
		})
		if len(c.cluster) == 0 {
			c.cluster = filterEndpoints(sp.eps, func(e *epInfo) bool { return e.Serving && e.Terminating })
		}
		c.hasAny = len(c.cluster) > 0
	}
	if !sp.usesLocalEndpoints() {
		c.all = c.cluster
		return c
	}
	var localReady, localServingTerminating bool
	for i := range sp.eps {
		e := &sp.eps[i]
		switch {
		case e.Ready:
			c.hasAny = true
			localReady = localReady || e.Local
		case e.Serving && e.Terminating:
			c.hasAny = true
			localServingTerminating = localServingTerminating || e.Local
		}
	}
	switch {
	case localReady:
		c.local = filterEndpoints(sp.eps, func(e *epInfo) bool { return e.Local && e.Ready })
	case localServingTerminating:
		useServingTerminating = true
		c.local = filterEndpoints(sp.eps, func(e *epInfo) bool { return e.Local && e.Serving && e.Terminating })
	}
	if !sp.usesClusterEndpoints() {
		c.all = c.local
		return c
	}
	if !useTopology && !useServingTerminating {
		// cluster holds every ready endpoint, so it is a superset of local.
		c.all = c.cluster
		return c
	}
	// Union of both lists; upstream builds it from a map (random order), the
	// lab sorts it so output stays deterministic.
	c.all = append(slices.Clip(c.cluster), c.local...)
	slices.SortFunc(c.all, func(a, b *epInfo) int { return strings.Compare(a.str, b.str) })
	c.all = slices.CompactFunc(c.all, func(a, b *epInfo) bool { return a.str == b.str })
	return c
}

// filterEndpoints returns pointers to the endpoints matching keep.
func filterEndpoints(eps []epInfo, keep func(*epInfo) bool) []*epInfo {
	var out []*epInfo
	for i := range eps {
		if keep(&eps[i]) {
			out = append(out, &eps[i])
		}
	}
	return out
}

// useZoneHints is topologyModeFromHints for zones: true when every ready
// endpoint carries a zone hint and at least one is hinted for zone. A node
// without a zone label ("") never matches, so hints are ignored there.
func useZoneHints(eps []epInfo, zone string) bool {
	anyReady, forZone := false, false
	for i := range eps {
		e := &eps[i]
		if !e.Ready {
			continue
		}
		anyReady = true
		if e.ZoneHints == "" {
			return false
		}
		forZone = forZone || e.HasZoneHint(zone)
	}
	return anyReady && forZone && zone != ""
}

// ClusterIPEndpoints is what kube-proxy with cfg does with a pod's packet
// to sp's ClusterIP, from the same decisions the renderers write: the
// endpoints it may pick, or no endpoint and the verdict, "DROP"
// (internalTrafficPolicy Local without a local endpoint) or "REJECT" (no
// usable endpoint anywhere).
func ClusterIPEndpoints(cfg Config, sp ServicePort) ([]Endpoint, string, error) {
	s, err := resolve(cfg)
	if err != nil {
		return nil, "", err
	}
	p, err := prepareOne(s, &sp)
	if err != nil || p == nil {
		return nil, "", err
	}
	switch pl := &p.plan; {
	case pl.internalFilterTarget != "":
		return nil, pl.internalFilterTarget, nil
	case p.internalLocal:
		return endpointsOf(pl.c.local), "", nil
	default:
		return endpointsOf(pl.c.cluster), "", nil
	}
}

func endpointsOf(eps []*epInfo) []Endpoint {
	out := make([]Endpoint, len(eps))
	for i, e := range eps {
		out[i] = e.Endpoint
	}
	return out
}
