//go:build linux

package fault

import (
	"fmt"

	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
)

// Class is a kind of fault that applies to any topology: it finds a walk
// of the lab it can break, breaks it where its own hop is, and repairs it.
// The named faults above are instances of classes on the shipped
// topologies; the classes let a generated topology be broken the same way,
// so a verdict is proved to fail at the right hop on plans never seen.
type Class struct {
	Name string
	// Target is the walk's object where the walk must first fail once the
	// fault is in; ok false when the class does not apply to the walk.
	Target func(t *spec.Topology, w spec.Walk) (object string, ok bool)
	inject func(s *session, w spec.Walk) error
	clear  func(s *session, w spec.Walk) error
}

// Inject breaks the lab for walk w.
func (c Class) Inject(rs *run.Session, w spec.Walk) error { return c.inject(&session{rs}, w) }

// Clear repairs what Inject broke.
func (c Class) Clear(rs *run.Session, w spec.Walk) error { return c.clear(&session{rs}, w) }

// plainPodWalk: a walk between two ends, not through a Service or load
// balancer, not a spread, churn or state check.
func plainPodWalk(w spec.Walk) bool {
	return w.LoadBalancer == "" && w.Service == "" && w.Kind == spec.WalkFlow && w.Expect != "drop"
}

// Classes are the fault classes, in order.
var Classes = []Class{
	{
		// The pod's static ARP entry for its gateway is gone: nothing it
		// sends leaves it.
		Name: "pod-static-arp",
		Target: func(t *spec.Topology, w spec.Walk) (string, bool) {
			p := t.Pod(w.From)
			return w.From, p != nil && plainPodWalk(w)
		},
		inject: func(s *session, w spec.Walk) error { return s.neigh(w.From, "eth0", spec.PodGateway, nil, false) },
		clear: func(s *session, w spec.Walk) error {
			p := s.Topo.Pod(w.From)
			return s.neigh(w.From, "eth0", spec.PodGateway, spec.HostVethMAC(p.Namespace, p.Name), true)
		},
	},
	{
		// The destination pod sits on a secondary ENI and its node lost
		// rule 1536: its answer leaves by the wrong ENI.
		Name: "missing-1536",
		Target: func(t *spec.Topology, w spec.Walk) (string, bool) {
			p, from := t.Pod(w.To), t.Pod(w.From)
			if p == nil || p.ENI == 0 || !plainPodWalk(w) || (from != nil && from.Node == p.Node) {
				return "", false
			}
			return p.Node, true
		},
		inject: func(s *session, w spec.Walk) error { return s.rule1536(w.To, false) },
		clear:  func(s *session, w spec.Walk) error { return s.rule1536(w.To, true) },
	},
	{
		// A security-group-like rule on the destination pod's node drops
		// TCP to it: the node never forwards the request.
		Name: "security-group-drop",
		Target: func(t *spec.Topology, w spec.Walk) (string, bool) {
			p, from := t.Pod(w.To), t.Pod(w.From)
			if p == nil || w.Protocol != "tcp" || !plainPodWalk(w) || (from != nil && from.Node == p.Node) {
				return "", false
			}
			return p.Node, true
		},
		inject: func(s *session, w spec.Walk) error {
			return s.restoreIn(s.Topo.Pod(w.To).Node, sgDrop(s, w, "-I", " 1"))
		},
		clear: func(s *session, w spec.Walk) error { return s.restoreIn(s.Topo.Pod(w.To).Node, sgDrop(s, w, "-D", "")) },
	},
	{
		// The target's app closes idle connections before the ALB does,
		// and its FIN reaches the ALB late: the ALB reuses the connection,
		// the target's kernel answers RST, the ALB answers 502. The walk
		// fails at the target, which never answers; a group of one target,
		// so the ALB cannot pick another.
		Name: "target-keepalive-short",
		Target: func(t *spec.Topology, w spec.Walk) (string, bool) {
			if w.LoadBalancer == "" || w.Kind != spec.WalkFlow || w.Expect == "drop" {
				return "", false
			}
			targets, _, err := keepAlivePlan(t, w)
			if err != nil || len(targets) != 1 {
				return "", false
			}
			return targets[0].Object, true
		},
		inject: func(s *session, w spec.Walk) error { return s.keepAliveShort(w, true) },
		clear:  func(s *session, w spec.Walk) error { return s.keepAliveShort(w, false) },
	},
}

func sgDrop(s *session, w spec.Walk, op, pos string) string {
	p := s.Topo.Pod(w.To)
	return fmt.Sprintf("*filter\n%s FORWARD%s -d %s/32 -p tcp -m tcp --dport %d -m comment --comment \"lab fault: security group\" -j DROP\nCOMMIT\n",
		op, pos, p.IP, w.Port)
}
