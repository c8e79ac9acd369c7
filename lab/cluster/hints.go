package cluster

import (
	"fmt"
	"math"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/spec"
)

// TopologyAuto reports whether the EndpointSlice controller uses its
// topology cache for the Service: one of the annotations is "Auto" or
// "auto" (hintsEnabled in kubernetes staging/src/k8s.io/endpointslice/
// reconciler.go, commit 020438690733). It then ignores trafficDistribution.
func TopologyAuto(s *corev1.Service) bool {
	v, ok := s.Annotations[spec.AnnotationTopologyAwareHints]
	if !ok {
		v = s.Annotations[spec.AnnotationTopologyMode]
	}
	return v == "Auto" || v == "auto"
}

// PreferClose reports whether trafficDistribution asks for same-zone hints
// (PreferClose, or its v1.33 name PreferSameZone) and the topology
// annotation does not override it.
func PreferClose(s *corev1.Service) bool {
	td := s.Spec.TrafficDistribution
	return td != nil && (*td == corev1.ServiceTrafficDistributionPreferClose ||
		*td == corev1.ServiceTrafficDistributionPreferSameZone) && !TopologyAuto(s)
}

// NodeZone is a node's topology.kubernetes.io/zone label: the AZ of its
// primary ENI's subnet, as EKS nodes are labelled.
func NodeZone(t *spec.Topology, node string) string {
	n := t.Node(node)
	if n == nil || n.ENI(0) == nil {
		return ""
	}
	s, _ := t.Subnet(n.ENI(0).Subnet)
	return s.AZ
}

// vCPUs of the instance types spec.InstanceTypes knows (EC2 instance type
// specifications).
var vCPUs = map[string]int{
	"t3.small": 2, "t3.medium": 2, "t3.large": 2, "t3.xlarge": 4,
	"m5.large": 2, "m5.xlarge": 4, "m5.2xlarge": 8, "m5.4xlarge": 16, "m5.8xlarge": 32,
	"m5.16xlarge": 64, "m5.24xlarge": 96,
	"c5.large": 2, "c5.xlarge": 4, "c5.4xlarge": 16,
	"m6i.large": 2, "m6i.xlarge": 4, "m6i.4xlarge": 16,
}

// NodeCPU is the allocatable CPU the topology cache weighs a node by, in
// millicores: the instance type's vCPUs (kubelet's reservations left out;
// they shift every zone alike). An unknown type counts as 2 vCPUs.
func NodeCPU(t *spec.Topology, node string) int64 {
	n := t.Node(node)
	if n == nil {
		return 0
	}
	typ := n.InstanceType
	if typ == "" {
		typ = spec.DefaultInstanceType
	}
	if v, ok := vCPUs[typ]; ok {
		return int64(v) * 1000
	}
	return 2000
}

// Messages of the topology cache's TopologyAwareHintsDisabled events
// (kubernetes staging/src/k8s.io/endpointslice/topologycache/event.go).
const (
	NoZoneSpecified                       = "One or more endpoints do not have a zone specified"
	NoAllocatedHintsForZones              = "No hints allocated for zones"
	InsufficientNodeInfo                  = "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes"
	NodesReadyInOneZoneOnly               = "Nodes only ready in one zone"
	InsufficientNumberOfEndpoints         = "Insufficient number of endpoints"
	MinAllocationExceedsOverloadThreshold = "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold"
)

// overloadThreshold is the most any endpoint may be overloaded (20%).
const overloadThreshold = 0.2

// zoneRatios is TopologyCache.SetNodes: each zone's share of the nodes'
// allocatable CPU; nil when a node lacks a zone or CPU, or all nodes are in
// one zone. Every lab node is Ready and none is a control-plane node.
func zoneRatios(t *spec.Topology) map[string]float64 {
	byZone := map[string]int64{}
	var total int64
	for _, n := range t.Nodes {
		z, cpu := NodeZone(t, n.Name), NodeCPU(t, n.Name)
		if z == "" || cpu == 0 {
			return nil
		}
		byZone[z] += cpu
		total += cpu
	}
	if total == 0 || len(byZone) < 2 {
		return nil
	}
	out := map[string]float64{}
	for z, c := range byZone {
		out[z] = float64(c) / float64(total)
	}
	return out
}

type allocation struct {
	minimum, maximum int
	desired          float64
}

// allocations is TopologyCache.getAllocations: per zone, the minimum,
// maximum and desired number of endpoints, or the event message saying why
// hints are not set.
func allocations(ratios map[string]float64, numEndpoints int) (map[string]allocation, string) {
	switch {
	case ratios == nil:
		return nil, InsufficientNodeInfo
	case len(ratios) < 2:
		return nil, NodesReadyInOneZoneOnly
	case len(ratios) > numEndpoints:
		return nil, fmt.Sprintf("%s (%d endpoints, %d zones)", InsufficientNumberOfEndpoints, numEndpoints, len(ratios))
	}
	remaining, minTotal := numEndpoints, 0
	out := map[string]allocation{}
	for _, z := range sortedKeys(ratios) {
		desired := ratios[z] * float64(numEndpoints)
		minimum := int(math.Ceil(desired * (1 / (1 + overloadThreshold))))
		out[z] = allocation{minimum: minimum, desired: math.Max(desired, float64(minimum))}
		minTotal += minimum
		remaining -= minimum
		if remaining < 0 {
			return nil, fmt.Sprintf("%s (%d endpoints, %d zones)", MinAllocationExceedsOverloadThreshold, numEndpoints, len(ratios))
		}
	}
	for z, a := range out {
		a.maximum = a.minimum + numEndpoints - minTotal
		out[z] = a
	}
	return out, ""
}

// topologyHints is TopologyCache.AddHints for one Service port's endpoints
// (kubernetes staging/src/k8s.io/endpointslice/topologycache, commit
// 40d99474ca4d): every ready endpoint is first hinted for its own zone,
// then zones with more than their CPU share give endpoints to zones with
// less. It returns the hint of each endpoint ("" for none) and, when it
// sets none, the controller's event message. Upstream picks among equal
// zones in map order; the lab takes them by name, so it is deterministic.
func topologyHints(t *spec.Topology, eps []Endpoint) ([]string, string) {
	zones, ready := make([]string, len(eps)), make([]bool, len(eps))
	for i, e := range eps {
		zones[i], ready[i] = e.Zone, e.Ready()
	}
	return addHints(zoneRatios(t), zones, ready)
}

// addHints is AddHints over endpoints in EndpointSlice order, given each
// one's zone and readiness and the zones' CPU ratios.
func addHints(ratios map[string]float64, zones []string, ready []bool) ([]string, string) {
	hints := make([]string, len(zones))
	n := 0
	for _, r := range ready {
		if r {
			n++
		}
	}
	allocs, why := allocations(ratios, n)
	if why != "" {
		return hints, why
	}
	allocated := map[string]int{}
	for i, z := range zones {
		if !ready[i] {
			continue
		}
		if z == "" {
			return make([]string, len(zones)), NoZoneSpecified
		}
		allocated[z]++
		hints[i] = z
	}
	giving, receiving := givingAndReceiving(allocs, allocated)
	for i, z := range zones {
		if !ready[i] {
			continue
		}
		if len(giving) == 0 || len(receiving) == 0 {
			break
		}
		if giving[z] == 0 {
			continue
		}
		to := sortedKeys(receiving)[0]
		hints[i] = to
		if giving[z]--; giving[z] == 0 {
			delete(giving, z)
		}
		if receiving[to]--; receiving[to] == 0 {
			delete(receiving, to)
		}
		allocated[to]++
		allocated[z]--
	}
	if len(allocated) == 0 {
		return make([]string, len(zones)), NoAllocatedHintsForZones
	}
	return hints, ""
}

// givingAndReceiving is getGivingAndReceivingZones: how many endpoints
// each zone gives away and receives to come near its desired allocation.
func givingAndReceiving(allocs map[string]allocation, allocated map[string]int) (map[string]int, map[string]int) {
	givingDesired, receivingDesired := map[string]float64{}, map[string]float64{}
	for z, a := range allocs {
		have := float64(allocated[z])
		switch {
		case have > a.desired:
			givingDesired[z] = have - a.desired
		case have < a.desired:
			receivingDesired[z] = a.desired - have
		}
	}
	giving, receiving := map[string]int{}, map[string]int{}
	for {
		gz, give := most(givingDesired)
		rz, recv := most(receivingDesired)
		if gz == "" || rz == "" || (give < 1 && recv < 1) || give < 0.5 || recv < 0.5 {
			break
		}
		giving[gz]++
		givingDesired[gz]--
		receiving[rz]++
		receivingDesired[rz]--
	}
	return giving, receiving
}

// most is getMost: the zone with the greatest value (the first by name on
// a tie), "" when none is above zero.
func most(m map[string]float64) (string, float64) {
	zone, n := "", 0.0
	for _, z := range sortedKeys(m) {
		if m[z] > n {
			zone, n = z, m[z]
		}
	}
	return zone, n
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// setHints fills in the zone hints of a Service port's endpoints as the
// EndpointSlice controller would: the topology cache for topology-mode
// Auto, same-zone hints for PreferClose (trafficdist.ReconcileHints,
// kubernetes staging/src/k8s.io/endpointslice/trafficdist, v1.31+), none
// otherwise. Only ready endpoints get hints.
func setHints(t *spec.Topology, sp *ServicePort) {
	switch {
	case TopologyAuto(sp.Service):
		hints, why := topologyHints(t, sp.Endpoints)
		for i := range sp.Endpoints {
			sp.Endpoints[i].ZoneHint = hints[i]
		}
		sp.HintsDisabled = why
	case PreferClose(sp.Service):
		for i := range sp.Endpoints {
			if sp.Endpoints[i].Ready() {
				sp.Endpoints[i].ZoneHint = sp.Endpoints[i].Zone
			}
		}
	}
}

// PodTraffic is where kube-proxy on node sends a pod's connections to a
// Service port's ClusterIP: the endpoints it may pick (topology hints and
// internalTrafficPolicy applied), or none and the verdict ("DROP" or
// "REJECT").
func PodTraffic(t *spec.Topology, sp ServicePort, node string) ([]Endpoint, string) {
	kps := ProxyServices([]ServicePort{sp}, node)
	eps, verdict, err := kubeproxy.ClusterIPEndpoints(ProxyConfig(t, node), kps[0])
	if err != nil {
		return nil, "REJECT"
	}
	var out []Endpoint
	for _, k := range eps {
		for _, e := range sp.Endpoints {
			if e.IP == k.IP && int32(e.Port) == k.Port {
				out = append(out, e)
				break
			}
		}
	}
	return out, verdict
}
