//go:build linux

// Package fault breaks a running lab the way real outages do (one kernel
// change in one namespace, which a walk shows at one hop) and repairs it.
// The faults injected are recorded in the lab's state, under its lock.
package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/lab/walk"
)

// session is a walk session seen by the faults: the lab's namespaces and
// its topology as it is now.
type session struct{ *run.Session }

// Fault is a realistic break of the data path, as outages really happen:
// one kernel change in one namespace, which a walk shows at one hop.
type Fault struct {
	Name, Summary string
	// Topology and Walk are where the fault shows: the walk fails, and its
	// first differing hop is at Object (one of the fault's own namespaces).
	Topology, Walk, Object string
	// Also are more namespaces the fault changes as it changes Object; the
	// walk's first differing hop is at whichever of them the load balancer
	// picked.
	Also []string
	// Symptom is what an engineer on call would be told.
	Symptom string
	// KubeProxyMode, if set, is the kube-proxy mode the fault needs: the
	// fault changes that mode's rules, which the other mode does not have.
	KubeProxyMode string
	// objects, if set, finds the namespaces to change in the running lab
	// (a Deployment's pods get new names when they are replaced); else
	// Object and Also.
	objects func(s *session) []string
	inject  func(s *session) error
	clear   func(s *session) error
}

// Faults are the faults labctl can inject, by name.
var Faults = map[string]*Fault{}

func register(f *Fault) { Faults[f.Name] = f }

// FaultNames lists the faults in order.
func FaultNames() []string {
	out := make([]string, 0, len(Faults))
	for n := range Faults {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func init() {
	register(&Fault{Name: "pod-static-arp", Topology: "pod-networking", Walk: "A1", Object: "pod51",
		Summary: "pod51's PERMANENT neighbour entry for 169.254.1.1 is gone",
		Symptom: "pod51 cannot reach anything, not even a pod on its own node",
		inject: func(s *session) error {
			return s.neigh("pod51", "eth0", spec.PodGateway, nil, false)
		},
		clear: func(s *session) error {
			p := s.Topo.Pod("pod51")
			return s.neigh("pod51", "eth0", spec.PodGateway, spec.HostVethMAC(p.Namespace, p.Name), true)
		}})
	register(&Fault{Name: "missing-1536", Topology: "pod-networking", Walk: "A3", Object: "node81",
		Summary: "node81 lost rule 1536 for pod81, the pod on its second ENI",
		Symptom: "pods on other nodes cannot talk to pod81; pod81's answers leave the wrong ENI",
		inject:  func(s *session) error { return s.rule1536("pod81", false) },
		clear:   func(s *session) error { return s.rule1536("pod81", true) }})
	register(&Fault{Name: "secondary-ip-unassigned", Topology: "pod-networking", Walk: "A3", Object: "node51",
		Summary: "pod81's IP is no longer a secondary IP of node81's eth1 (the VPC does not deliver it)",
		Symptom: "pod81 is unreachable from other nodes, fine from its own node",
		inject: func(s *session) error {
			p, err := s.pod("pod81")
			if err != nil {
				return err
			}
			if err := s.proxyNeigh(p.Node, spec.ENIName(p.ENI), p.IP, false); err != nil {
				return err
			}
			// As if every ARP cache had aged out since: senders must ask again.
			for _, n := range s.Topo.Nodes {
				_ = s.forgetNeigh(n.Name, p.IP)
			}
			return s.forgetNeigh(spec.RouterName, p.IP)
		},
		clear: func(s *session) error {
			p, err := s.pod("pod81")
			if err != nil {
				return err
			}
			return s.proxyNeigh(p.Node, spec.ENIName(p.ENI), p.IP, true)
		}})
	register(&Fault{Name: "rp-filter-strict", Topology: "nodeport-local", Walk: "B3-local-secondary", Object: "node81",
		Summary: "rp_filter is strict (1) on node81's eth0",
		Symptom: "the NodePort answers on node71 but not on node81, whose pod sits on a secondary ENI",
		inject:  func(s *session) error { return s.sysctl("node81", "net/ipv4/conf/eth0/rp_filter", "1") },
		clear:   func(s *session) error { return s.planned("node81", "net/ipv4/conf/eth0/rp_filter") }})
	register(ruleFault(&Fault{Name: "external-snat", Topology: "pod-egress", Walk: "D2", Object: "node51",
		Summary: "AWS_VPC_K8S_CNI_EXTERNALSNAT=true on node51 without a NAT gateway: no SNAT to the node's IP",
		Symptom: "pods on node51 cannot reach the internet; the node itself can"},
		"nat", "POSTROUTING", `-m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0`, false, 0))
	register(ruleFault(&Fault{Name: "kube-proxy-jump-gone", Topology: "clusterip", Walk: "B1", Object: "node51",
		Summary: "node51's nat PREROUTING no longer jumps to KUBE-SERVICES (kube-proxy's rules half-removed)",
		Symptom: "Services answer from every node but node51; pod IPs work everywhere", KubeProxyMode: spec.KubeProxyIPTables},
		"nat", "PREROUTING", `-m comment --comment "kubernetes service portals" -j KUBE-SERVICES`, false, 1))
	register(ruleFault(&Fault{Name: "security-group-drop", Topology: "pod-networking", Walk: "A2", Object: "node71",
		Summary: "a security-group-like rule on node71 drops TCP to its pods' port 8080",
		Symptom: "pod71 answers ping but not its HTTP port"},
		"filter", "FORWARD", `-p tcp -m tcp --dport 8080 -m comment --comment "lab fault: security group" -j DROP`, true, 1))
	// node71's security group lost its NodePort rule: the NLB's health
	// checks and the clients' preserved flows both die on node71. Blocking
	// the health checks alone no longer breaks anything: us-east-1b's NLB
	// node, whose only target node71 is, fails open to it (routing
	// failover, lb.TargetGroup.Eligible) and the client's flow still works.
	nodePortDrop := func(s *session) (string, error) {
		port, err := s.nodePort("web")
		return fmt.Sprintf("-p tcp --dport %d -m comment --comment \"lab fault: node security group\" -j DROP", port), err
	}
	register(&Fault{Name: "health-check-blocked", Topology: "nlb-instance", Walk: "C1-b", Object: "node71",
		Summary: "node71 drops TCP to its NodePort 30080 from everywhere (its security group lost the NodePort rule): the NLB's health checks and the clients' flows",
		Symptom: "clients of the NLB in us-east-1b time out; us-east-1a is fine",
		inject: func(s *session) error {
			rule, err := nodePortDrop(s)
			if err != nil {
				return err
			}
			if err := s.restoreIn("node71", "*raw\n-I PREROUTING 1 "+rule+"\nCOMMIT\n"); err != nil {
				return err
			}
			return s.awaitHealth("node71", agent.StateUnhealthy)
		},
		clear: func(s *session) error {
			if rule, err := nodePortDrop(s); err == nil {
				_ = s.restoreIn("node71", "*raw\n-D PREROUTING "+rule+"\nCOMMIT\n")
			}
			return s.awaitHealth("node71", agent.StateHealthy) // healthy again is what counts, however it got there
		}})
	// The rating Service's two pods, behind the ALB's rule for /rating, as
	// up names them; deployPods finds them after a pod delete too.
	ratingPods := []string{"rating-mf8pftl7jh-2k8hn", "rating-mf8pftl7jh-8vchc"}
	register(ruleFault(&Fault{Name: "target-port-closed", Topology: "alb-ingress", Walk: "C4-rating",
		Object: ratingPods[0], Also: ratingPods[1:], objects: deployPods("Deployment default/rating"),
		Summary: "nothing listens on the rating pods' port 80 any more (an image that moved its port): they answer SYNs with RST",
		Symptom: "/rating answers 502 Bad Gateway at once; /order works"},
		"filter", "INPUT", `-p tcp -m tcp --dport 80 -m comment --comment "lab fault: nothing listens" -j REJECT --reject-with tcp-reset`, true, 1))
	register(ruleFault(&Fault{Name: "target-blackholed", Topology: "alb-ingress", Walk: "C4-rating",
		Object: ratingPods[0], Also: ratingPods[1:], objects: deployPods("Deployment default/rating"),
		Summary: "the rating pods drop everything to port 80 (a security group for pods without the ALB's group)",
		Symptom: "/rating answers 504 Gateway Time-out after a pause; /order works"},
		"filter", "INPUT", `-p tcp -m tcp --dport 80 -m comment --comment "lab fault: security group" -j DROP`, true, 1))
	// The rating pods' apps close idle connections after Node.js's default
	// keep-alive (scaled), well under the ALB's idle timeout; their nodes
	// lose the first FINs of those closes (keepAlivePlan says why), so the
	// ALB reuses a connection its target closed and answers 502.
	keepAliveWalk := func(s *session) (spec.Walk, error) {
		if w := s.Topo.Walk("C4-rating"); w != nil {
			return *w, nil
		}
		return spec.Walk{}, fmt.Errorf("topology %s has no walk C4-rating", s.Topo.Name)
	}
	register(&Fault{Name: "target-keepalive-short", Topology: "alb-ingress", Walk: "C4-rating",
		Object: ratingPods[0], Also: ratingPods[1:], objects: deployPods("Deployment default/rating"),
		Summary: fmt.Sprintf("the rating pods' app closes connections idle %v (Node.js's default keep-alive, 5 s, scaled), "+
			"shorter than the ALB's idle timeout (%v, 60 s scaled); their FINs reach the ALB late", ShortKeepAlive, agent.ALBIdleTimeout),
		Symptom: "/rating answers 502 Bad Gateway now and then, to a request that comes a moment after the one before; /order is fine",
		inject: func(s *session) error {
			w, err := keepAliveWalk(s)
			if err != nil {
				return err
			}
			return s.keepAliveShort(w, true)
		},
		clear: func(s *session) error {
			w, err := keepAliveWalk(s)
			if err != nil {
				return err
			}
			return s.keepAliveShort(w, false)
		}})
	register(&Fault{Name: "router-port-down", Topology: "pod-networking", Walk: "A4-subnet", Object: "vpc",
		Summary: "the VPC router's port towards the client instance is down (an ENI detached)",
		Symptom: "pods reach each other, but not the client instance in the other subnet",
		inject:  func(s *session) error { return s.linkState("vpc", spec.RouterPortName("client", 0), false) },
		clear:   func(s *session) error { return s.linkState("vpc", spec.RouterPortName("client", 0), true) }})
	// The two ways a private subnet behind a NAT gateway loses the
	// internet: its own route table, or the NAT gateway's.
	register(&Fault{Name: "nat-route-missing", Topology: "private-subnets", Walk: "D3", Object: spec.RouterName,
		Summary: "route table private-a lost its 0.0.0.0/0 route to NAT gateway nat-a",
		Symptom: "pods in the private subnet cannot reach the internet; they reach each other and the VPC",
		inject:  func(s *session) error { return s.defaultRoute("private-a", false) },
		clear:   func(s *session) error { return s.defaultRoute("private-a", true) }})
	register(&Fault{Name: "natgw-without-igw", Topology: "private-subnets", Walk: "D3", Object: spec.RouterName,
		Summary: "the NAT gateway's subnet's route table (public) has no 0.0.0.0/0 route to the internet gateway",
		Symptom: "nothing in the private subnets reaches the internet, though their route table points at the NAT gateway",
		inject:  func(s *session) error { return s.defaultRoute("public", false) },
		clear:   func(s *session) error { return s.defaultRoute("public", true) }})
}

// defaultRoute replaces a VPC route table's 0.0.0.0/0 on the router with
// an unreachable route (as if the route were deleted from the table), or
// puts back the route the plan renders.
func (s *session) defaultRoute(table string, restore bool) error {
	h, err := s.NS(spec.RouterName)
	if err != nil {
		return err
	}
	id := plan.RouteTableID(s.Topo, table)
	if id == 0 {
		return fmt.Errorf("topology %s has no route table %q", s.Topo.Name, table)
	}
	dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	if !restore {
		return h.NL.RouteReplace(&netlink.Route{Dst: dst, Table: id, Type: unix.RTN_UNREACHABLE})
	}
	for _, r := range plan.Build(s.Topo, s.Lab).NS(spec.RouterName).Routes {
		if r.Table != id || r.Dst.Bits() != 0 || r.Unreachable {
			continue
		}
		l, err := h.NL.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("%s: link %s: %w", spec.RouterName, r.Dev, err)
		}
		return h.NL.RouteReplace(&netlink.Route{Dst: dst, Table: id, Gw: r.Gw.AsSlice(), LinkIndex: l.Attrs().Index})
	}
	return fmt.Errorf("route table %s has no default route to restore in topology %s", table, s.Topo.Name)
}

// deployPods lists a Deployment's pods in the running lab.
func deployPods(manifest string) func(s *session) []string {
	return func(s *session) []string {
		var out []string
		for _, p := range s.Topo.Pods {
			if p.Manifest == manifest {
				out = append(out, p.Name)
			}
		}
		return out
	}
}

// ruleFault makes a fault of one iptables rule in the fault's Object (and
// in each of Also): one the lab lacks and the fault adds at pos (add), or
// one the lab has and the fault removes, to put back at pos (0 appends).
// Both directions are idempotent: a user who already repaired the fault by
// hand can still clear it. rule is in iptables-save's canonical form, so
// its presence is read from iptables-save.
func ruleFault(f *Fault, table, chain, rule string, add bool, pos int) *Fault {
	present := func(s *session, obj string) (bool, error) {
		h, err := s.NS(obj)
		if err != nil {
			return false, err
		}
		out, err := netfilter.Of(h).Save(h, false, table)
		return strings.Contains(out, "-A "+chain+" "+rule+"\n"), err
	}
	put := fmt.Sprintf("*%s\n-A %s %s\nCOMMIT\n", table, chain, rule)
	if pos > 0 {
		put = fmt.Sprintf("*%s\n-I %s %d %s\nCOMMIT\n", table, chain, pos, rule)
	}
	del := fmt.Sprintf("*%s\n-D %s %s\nCOMMIT\n", table, chain, rule)
	ensure := func(want bool) func(*session) error {
		return func(s *session) error {
			objs := append([]string{f.Object}, f.Also...)
			if f.objects != nil {
				objs = f.objects(s)
			}
			for _, obj := range objs {
				if _, err := os.Stat(ns.Path(spec.NSName(s.Lab, obj))); errors.Is(err, os.ErrNotExist) && !want {
					continue // the namespace is gone, and its rules with it
				}
				has, err := present(s, obj)
				if err != nil {
					return err
				}
				switch {
				case has == want:
				case want:
					err = s.restoreIn(obj, put)
				default:
					err = s.restoreIn(obj, del)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
	}
	f.inject, f.clear = ensure(add), ensure(!add)
	return f
}

// readFaults lists the recorded faults. A record that does not parse is an
// error, not "none": clear would otherwise forget faults still in the kernel.
func readFaults(lab string) ([]string, error) {
	var out []string
	b, err := os.ReadFile(state.FaultsFile(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &out)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", state.FaultsFile(lab), err)
	}
	return out, nil
}

// writeFaults replaces the record whole (a temporary file, then rename).
func writeFaults(lab string, names []string) error {
	b, _ := json.Marshal(names)
	tmp := state.FaultsFile(lab) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, state.FaultsFile(lab))
}

// Inject breaks the lab as the fault describes. The lab must be built
// from the fault's topology.
func Inject(rs *run.Session, name string) (*Fault, error) {
	s := &session{rs}
	f := Faults[name]
	if f == nil {
		return nil, fmt.Errorf("no fault %q (labctl fault list shows them)", name)
	}
	if s.Topo.Name != f.Topology {
		return nil, fmt.Errorf("fault %s needs a lab of topology %s; lab %s is %s", name, f.Topology, s.Lab, s.Topo.Name)
	}
	if err := modeFits(f, s.Topo, s.Lab); err != nil {
		return nil, err
	}
	active, unlock, err := lockFaults(s.Lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for _, a := range active {
		if a == name {
			return nil, fmt.Errorf("fault %s is already injected", name)
		}
	}
	// Recorded first: an inject that fails half-way (a rule in, then a
	// health check that never turns) is rolled back, or stays recorded for
	// labctl fault clear, never left unknown in the kernel.
	if err := writeFaults(s.Lab, append(active, name)); err != nil {
		return nil, err
	}
	crash.Point(context.Background(), "fault-recorded")
	if err := f.inject(s); err != nil {
		if cerr := f.clear(s); cerr != nil {
			return nil, fmt.Errorf("injecting %s: %w (rolling back failed too: %v; labctl fault clear retries)", name, err, cerr)
		}
		return nil, errors.Join(fmt.Errorf("injecting %s: %w (rolled back)", name, err), writeFaults(s.Lab, active))
	}
	return f, nil
}

// Clear undoes every injected fault, newest first. It refuses in an
// exercise's lab: that would give the ticket's answer away.
func Clear(rs *run.Session) ([]string, error) {
	s := &session{rs}
	if _, err := os.Stat(state.ExerciseFile(s.Lab)); err == nil {
		return nil, fmt.Errorf("lab %s is an exercise: find and fix the fault yourself (labctl exercise check tells you when), "+
			"or give up with labctl down %s", s.Lab, s.Lab)
	}
	active, unlock, err := lockFaults(s.Lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var errs []error
	for i := len(active) - 1; i >= 0; i-- {
		if err := Faults[active[i]].clear(s); err != nil {
			errs = append(errs, fmt.Errorf("clearing %s: %w", active[i], err))
		}
	}
	if len(errs) > 0 {
		return active, errors.Join(errs...)
	}
	if err := os.Remove(state.FaultsFile(s.Lab)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return active, err
	}
	return active, nil
}

// lockFaults takes the lab's lock and reads the fault record under it: one
// fault change at a time per lab (and none during a pod delete), since two
// injects would each write the record without the other's fault.
func lockFaults(lab string) ([]string, func(), error) {
	unlock, err := state.Lock(lab)
	if err != nil {
		return nil, nil, err
	}
	active, err := readFaults(lab)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return active, unlock, nil
}

// FirstFailure is where a walk shows a fault: used by the fault suite and
// by labctl exercise check.
func FirstFailure(r *walk.Report) string {
	if f := r.FirstFailure(); f != nil {
		return f.Point.Object
	}
	return ""
}

// The faults' values come from the running lab's topology, never copied
// addresses: a pod's address, node, ENI and table; a Service's NodePort; a
// sysctl's value as the plan writes it.

// pod is a pod of the running lab.
func (s *session) pod(name string) (*spec.Pod, error) {
	if p := s.Topo.Pod(name); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("lab %s has no pod %s", s.Lab, name)
}

// rule1536 adds or removes the VPC CNI's rule 1536 of a pod on a secondary
// ENI: from the pod's IP, lookup the ENI's table.
func (s *session) rule1536(pod string, add bool) error {
	p, err := s.pod(pod)
	if err != nil {
		return err
	}
	return s.rule(p.Node, 1536, p.IP.String(), spec.RouteTable(p.ENI), add)
}

// nodePort is the first NodePort of a Service (default namespace or "ns/name").
func (s *session) nodePort(svc string) (int32, error) {
	sv := cluster.ServiceByName(s.Topo, svc)
	if sv == nil || len(sv.Spec.Ports) == 0 || sv.Spec.Ports[0].NodePort == 0 {
		return 0, fmt.Errorf("lab %s has no Service %s with a NodePort", s.Lab, svc)
	}
	return sv.Spec.Ports[0].NodePort, nil
}

// planned writes back a namespace's sysctl as the lab's plan has it.
func (s *session) planned(obj, key string) error {
	for _, n := range plan.Build(s.Topo, s.Lab).Namespaces {
		if n.Name != spec.NSName(s.Lab, obj) {
			continue
		}
		for _, sc := range n.Sysctls {
			if sc.Key == key {
				return s.sysctl(obj, key, sc.Value)
			}
		}
	}
	return fmt.Errorf("the plan of lab %s writes no %s in %s", s.Lab, key, obj)
}

// link is an object's namespace and one of its links.
func (s *session) link(obj, dev string) (*ns.NS, netlink.Link, error) {
	h, err := s.NS(obj)
	if err != nil {
		return nil, nil, err
	}
	l, err := h.NL.LinkByName(dev)
	if err != nil {
		return nil, nil, fmt.Errorf("%s in %s: %w", dev, h.Name, err)
	}
	return h, l, nil
}

func (s *session) neigh(obj, dev string, ip netip.Addr, mac net.HardwareAddr, add bool) error {
	h, l, err := s.link(obj, dev)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, IP: ip.AsSlice(), State: netlink.NUD_PERMANENT, HardwareAddr: mac}
	if add {
		return h.NL.NeighSet(n)
	}
	return already(h.NL.NeighDel(n))
}

func (s *session) proxyNeigh(obj, dev string, ip netip.Addr, add bool) error {
	h, l, err := s.link(obj, dev)
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, IP: ip.AsSlice(), Flags: netlink.NTF_PROXY}
	if add {
		return already(h.NL.NeighAdd(n))
	}
	return already(h.NL.NeighDel(n))
}

// awaitHealth waits until the load balancers see a target in a state: a
// health check fault takes effect only once the checks notice it.
func (s *session) awaitHealth(target, state string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if h, err := agent.ReadHealth(s.Lab); err == nil {
			// Every group's view of the target: it may be in more than one.
			seen, done := false, true
			for _, th := range h {
				if th.Object == target {
					seen, done = true, done && th.State == state
				}
			}
			if seen && done {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the load balancer never saw %s %s (is the app server running?)", target, state)
}

// forgetNeigh drops a namespace's cached neighbour entries for ip.
func (s *session) forgetNeigh(obj string, ip netip.Addr) error {
	h, err := s.NS(obj)
	if err != nil {
		return err
	}
	ns, err := h.NL.NeighList(0, unix.AF_INET)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if n.IP.Equal(ip.AsSlice()) && n.State&netlink.NUD_PERMANENT == 0 {
			n := n
			_ = h.NL.NeighDel(&n)
		}
	}
	return nil
}

func (s *session) rule(obj string, prio int, src string, table int, add bool) error {
	h, err := s.NS(obj)
	if err != nil {
		return err
	}
	r := netlink.NewRule()
	r.Priority, r.Table = prio, table
	r.Src = &net.IPNet{IP: net.ParseIP(src).To4(), Mask: net.CIDRMask(32, 32)}
	if add {
		return already(h.NL.RuleAdd(r))
	}
	return already(h.NL.RuleDel(r))
}

// already treats "it is already so" as success, so a fault repaired by hand
// still clears.
func already(err error) error {
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func (s *session) sysctl(obj, key, value string) error {
	h, err := s.NS(obj)
	if err != nil {
		return err
	}
	return h.Do(func() error { return ns.WriteSysctl(key, value) })
}

func (s *session) restoreIn(obj, payload string) error {
	h, err := s.NS(obj)
	if err != nil {
		return err
	}
	return netfilter.Of(h).Restore(h, payload, true)
}

func (s *session) linkState(obj, dev string, up bool) error {
	h, l, err := s.link(obj, dev)
	if err != nil {
		return err
	}
	if up {
		return h.NL.LinkSetUp(l)
	}
	return h.NL.LinkSetDown(l)
}
