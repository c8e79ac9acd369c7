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

// categorize mirrors proxy.CategorizeEndpoints (without topology hints,
// which the lab does not model): Ready endpoints are used, falling back to
// serving+terminating ones independently for the Cluster and Local sets.
func categorize(sp *svcPort) categorized {
	var c categorized
	useServingTerminating := false
	if sp.usesClusterEndpoints() {
		c.cluster = filterEndpoints(sp.eps, func(e *epInfo) bool { return e.Ready })
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
	if !useServingTerminating {
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
