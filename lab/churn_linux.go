//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// PodChange is what DeletePod did.
type PodChange struct {
	Deleted, Started spec.Pod
	// Synced is how long the endpoints and every node's rules took to follow.
	Synced time.Duration
	// Syncs are kube-proxy's syncs, one per node.
	Syncs []NodeSync
	// Resumed is set when this call finished a delete that an earlier one
	// left half done (an error, a crash or kill -9 on the way).
	Resumed bool
}

// The steps of a pod deletion, recorded in state.json as each one is
// done, so that a delete that stopped half-way can be resumed.
const (
	stepRecorded = "recorded" // the change is in the state; nothing made yet
	stepStarted  = "started"  // the replacement pod runs
	stepSynced   = "synced"   // every node's kube-proxy rules follow
	stepDone     = "done"     // the app server serves the new pod; the old one is gone
)

// DeletePod removes a pod as `kubectl delete pod` would: its Deployment
// starts a replacement with a new IP, the endpoints controller and
// kube-proxy on every node follow, and the app server serves the new pod.
// Each step is recorded before the next begins; if a delete stopped
// half-way, deleting the same pod again resumes it from its last step.
func DeletePod(ctx context.Context, lab, pod string) (*PodChange, error) {
	unlock, err := lockLab(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, st, err := Load(lab)
	if err != nil {
		return nil, err
	}
	if pd := st.Churn.Pending; pd != nil {
		if pd.Deleted.Name != pod {
			return nil, fmt.Errorf("lab %s: the delete of pod %s stopped half-way (after step %q); run `labctl pod delete %s` to finish it first",
				lab, pd.Deleted.Name, pd.Step, pd.Deleted.Name)
		}
		ch, err := deleteSteps(ctx, t, lab, st)
		if ch != nil {
			ch.Resumed = true
		}
		return ch, err
	}
	gone := t.Pod(pod)
	if gone == nil {
		return nil, fmt.Errorf("lab %s has no pod %q", lab, pod)
	}
	repl, err := t.Replacement(*gone, st.Churn)
	if err != nil {
		return nil, err
	}
	// Record first: if we die half-way, down still finds every namespace in
	// the state, and the next delete of this pod resumes from the step.
	st.Churn.Deleted = append(st.Churn.Deleted, gone.Name)
	st.Churn.Released = append(st.Churn.Released, gone.IP)
	st.Churn.Added = append(st.Churn.Added, repl)
	st.Churn.Pending = &spec.PendingDelete{Deleted: *gone, Started: repl, Step: stepRecorded}
	st.Namespaces = append(st.Namespaces, spec.NSName(lab, repl.Name))
	if err := st.write(); err != nil {
		return nil, err
	}
	t.ApplyChurn(spec.Churn{Deleted: []string{gone.Name}, Added: []spec.Pod{repl}})
	return deleteSteps(ctx, t, lab, st)
}

// lockLab serialises the commands that change a running lab's state (two
// pod deletes at once would each write state.json, and one would lose the
// other's namespaces). The lock is on a file in the state directory, so a
// killed holder releases it.
func lockLab(lab string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(Dir(lab), "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("lab %q is not up", lab)
		}
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking lab %s: %w", lab, err)
	}
	return func() { f.Close() }, nil
}

// deleteSteps does the pending delete's steps from the one after the last
// recorded. t already has the change applied. Every step can run again
// after a crash in it: the replacement is rebuilt from nothing, the sync
// rewrites the changed Services whatever the kernel holds, and stopPod
// skips what is already gone.
func deleteSteps(ctx context.Context, t *spec.Topology, lab string, st *State) (*PodChange, error) {
	pd := st.Churn.Pending
	ch := &PodChange{Deleted: pd.Deleted, Started: pd.Started}
	start := time.Now()
	// step does one step and records it. A kill -9 inside it (or at its
	// fault point) leaves the previous step recorded, so a resume redoes it;
	// Ctrl-C stops before the next step, with this one recorded.
	step := func(name string, do func() error) error {
		err := ctx.Err()
		if err == nil {
			err = do()
		}
		if err != nil {
			return fmt.Errorf("deleting pod %s stopped after step %q: %w (run `labctl pod delete %s` again to resume; `labctl down %s` removes the lab)",
				pd.Deleted.Name, pd.Step, err, pd.Deleted.Name, lab)
		}
		faultPoint(ctx, "pod-"+name)
		pd.Step = name
		return st.write()
	}
	if pd.Step == stepRecorded {
		err := step(stepStarted, func() error {
			// A crash may have left part of the replacement: start afresh.
			if err := stopPod(lab, pd.Started); err != nil {
				return err
			}
			if err := startPod(t, lab, pd.Started.Name); err != nil {
				return err
			}
			_, err := writeResolvConf(t, lab, pd.Started)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if pd.Step == stepStarted {
		// The endpoints before the change: the pods of t with the deleted
		// one instead of its replacement.
		before := *t
		before.Pods = append(slices.DeleteFunc(slices.Clone(t.Pods), func(p spec.Pod) bool { return p.Name == pd.Started.Name }), pd.Deleted)
		err := step(stepSynced, func() error {
			var err error
			ch.Syncs, err = SyncKubeProxy(t, lab, cluster.Endpoints(&before))
			return err
		})
		if err != nil {
			return nil, err
		}
		ch.Synced = time.Since(start)
	}
	err := step(stepDone, func() error {
		if err := reloadAgent(lab); err != nil {
			return err
		}
		return stopPod(lab, pd.Deleted)
	})
	if err != nil {
		return nil, err
	}
	// The deleted pod's namespace leaves the list only once it is gone, so
	// down still removes it after a failure on the way.
	st.Churn.Pending = nil
	st.Namespaces = slices.DeleteFunc(st.Namespaces, func(n string) bool { return n == spec.NSName(lab, pd.Deleted.Name) })
	if err := st.write(); err != nil {
		return nil, err
	}
	return ch, nil
}

// startPod creates one pod in a running lab, as the VPC CNI's ADD would.
func startPod(t *spec.Topology, lab, pod string) error {
	podNS, veth, nodePart := plan.PodPlan(t, lab, pod)
	p, err := ns.Create(podNS.Name)
	if err != nil {
		return err
	}
	defer p.Close()
	node, err := ns.Open(nodePart.Name)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := addVeth(p, node, veth); err != nil {
		return err
	}
	// Fault points inside the CNI's ADD: a half-made replacement (a veth
	// without addresses; a pod side without the node's routes and rules)
	// that a resumed delete must clear before starting it again.
	faultPoint(context.Background(), "pod-start-veth")
	if err := configure(p, podNS); err != nil {
		return err
	}
	faultPoint(context.Background(), "pod-start-pod")
	return configure(node, nodePart)
}

// stopPod removes a pod's namespace and what the VPC CNI's DEL removes on
// the node: rules 512 and 1536 and the ENI's proxy entry (the /32 route
// goes with the veth). What is already gone is skipped, so it also clears
// a half-made pod.
func stopPod(lab string, pod spec.Pod) error {
	name := spec.NSName(lab, pod.Name)
	killInNamespaces([]string{name})
	node, err := ns.Open(spec.NSName(lab, pod.Node))
	if err != nil {
		return err
	}
	defer node.Close()
	// Delete the host side of the veth now, as the CNI's DEL does: the
	// kernel frees an unmounted namespace, and the veth with it, only
	// later, and a pod of the same name started meanwhile (a resumed
	// delete) would find the name taken.
	veth := spec.HostVethName(pod.Namespace, pod.Name)
	switch l, err := node.NL.LinkByName(veth); {
	case err == nil:
		if err := node.NL.LinkDel(l); err != nil {
			return fmt.Errorf("ip link del %s in %s: %w", veth, node.Name, err)
		}
	case !errors.As(err, &netlink.LinkNotFoundError{}):
		return fmt.Errorf("ip link show %s in %s: %w", veth, node.Name, err)
	}
	if err := ns.Delete(name); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(EtcNetns, name))
	host := &net.IPNet{IP: pod.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}
	rules, err := node.NL.RuleList(unix.AF_INET)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if (r.Priority == 512 && r.Dst != nil && r.Dst.String() == host.String()) ||
			(r.Priority == 1536 && r.Src != nil && r.Src.String() == host.String()) {
			r := r
			if err := node.NL.RuleDel(&r); err != nil {
				return fmt.Errorf("ip rule del %d in %s: %w", r.Priority, node.Name, err)
			}
		}
	}
	eni, err := node.NL.LinkByName(spec.ENIName(pod.ENI))
	if err != nil {
		return err
	}
	err = node.NL.NeighDel(&netlink.Neigh{LinkIndex: eni.Attrs().Index, Family: unix.AF_INET, Flags: netlink.NTF_PROXY,
		IP: pod.IP.AsSlice()})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("ip neigh del proxy %s in %s: %w", pod.IP, node.Name, err)
	}
	return nil
}

// NodeSync is what kube-proxy did on one node after a change.
type NodeSync struct {
	Node string
	// Full is true when the partial restore failed and kube-proxy fell back
	// to rewriting every chain, as upstream does after a failed restore;
	// Fallback says why.
	Full     bool
	Fallback string
	Bytes    int
	// Written are the per-Service chains the payload (re)wrote; Deleted
	// the stale ones it removed with -X.
	Written, Deleted []kubeproxy.Chain
}

// SyncKubeProxy is kube-proxy's sync on every node after the Services'
// endpoints changed from before to those of t. A running kube-proxy has
// before applied, so each node's Proxier is primed with it (no restore)
// and the change is a partial sync (KEP-3453): the top-level chains, the
// changed Services' chains, and -X for chains no longer used. Chains that
// iptables-save shows beyond those are leftovers, and are deleted too.
func SyncKubeProxy(t *spec.Topology, lab string, before []cluster.ServicePort) ([]NodeSync, error) {
	sps := cluster.Endpoints(t)
	var out []NodeSync
	for _, n := range t.Nodes {
		h, err := ns.Open(spec.NSName(lab, n.Name))
		if err != nil {
			return nil, err
		}
		s, err := syncNode(h, t, n.Name, before, sps)
		h.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		// A kill -9 here leaves some nodes synced and the rest not.
		faultPoint(context.Background(), "pod-synced-"+n.Name)
	}
	return out, nil
}

func syncNode(h *ns.NS, t *spec.Topology, node string, before, after []cluster.ServicePort) (NodeSync, error) {
	s := NodeSync{Node: node}
	p, err := kubeproxy.NewProxier(cluster.ProxyConfig(t, node))
	if err != nil {
		return s, err
	}
	primed, err := p.Sync(cluster.ProxyServices(before, node))
	if err != nil {
		return s, err
	}
	p.Applied(primed, nil)
	var save bytes.Buffer
	err = h.Do(func() error {
		cmd := exec.Command(iptablesOf(h).Save, "-t", "nat")
		cmd.Stdout = &save
		return cmd.Run()
	})
	if err != nil {
		return s, fmt.Errorf("iptables-save in %s: %w", h.Name, err)
	}
	p.SetExistingChains(kubeproxy.ChainsFromSave(save.Bytes(), kubeproxy.TableNAT))
	services := cluster.ProxyServices(after, node)
	res, err := p.Sync(services)
	if err != nil {
		return s, err
	}
	if err := restore(h, string(res.Payload), true); err != nil {
		// kube-proxy counts a failed partial restore and retries in full.
		s.Fallback = err.Error()
		p.Applied(res, err)
		if res, err = p.Sync(services); err != nil {
			return s, err
		}
		if err2 := restore(h, string(res.Payload), true); err2 != nil {
			return s, errors.Join(fmt.Errorf("partial sync: %w", err), fmt.Errorf("full sync after it: %w", err2))
		}
		// A full sync also ensures the jumps from the built-in chains.
		if err := ensureJumps(h); err != nil {
			return s, err
		}
	}
	s.Full, s.Bytes, s.Written, s.Deleted = res.Full, len(res.Payload), res.WrittenChains, res.DeletedChains
	return s, nil
}

// ensureJumps puts back kube-proxy's jump rules that a node lacks, as
// kube-proxy does on every full sync.
func ensureJumps(h *ns.NS) error {
	var save bytes.Buffer
	err := h.Do(func() error {
		cmd := exec.Command(iptablesOf(h).Save)
		cmd.Stdout = &save
		return cmd.Run()
	})
	if err != nil {
		return fmt.Errorf("iptables-save in %s: %w", h.Name, err)
	}
	if payload := kubeproxy.EnsureJumps(save.Bytes()); payload != "" {
		return restore(h, payload, true)
	}
	return nil
}

// agentSocket is where the app server takes commands.
func agentSocket(lab string) string { return filepath.Join(Dir(lab), "agent.sock") }

// reloadAgent asks the app server to reload the lab's pods and waits until
// it serves exactly them.
func reloadAgent(lab string) error {
	c, err := net.DialTimeout("unix", agentSocket(lab), trafficTimeout)
	if err != nil {
		return fmt.Errorf("reaching the app server: %w", err)
	}
	defer c.Close()
	// Longer than a reload can take: the health checks settle within
	// settleLimit, after the old ones stopped and the listeners changed.
	_ = c.SetDeadline(time.Now().Add(settleLimit + 20*time.Second))
	if _, err := fmt.Fprintln(c, "reload"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("app server reload: %w", err)
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("app server reload: %s", strings.TrimSpace(line))
	}
	return nil
}

// Churn is the outcome of a churn walk (B4).
type Churn struct {
	Change        *PodChange
	Before, After map[string]int
	Failures      int
	LastErr       error
	Connections   int
}

// Passed: every request was answered, none after the change by the deleted
// pod, and the new pod took its share.
func (c *Churn) Passed() bool {
	return c.Failures == 0 && c.Change != nil && c.After[c.Change.Deleted.Name] == 0 && c.After[c.Change.Started.Name] > 0
}

// churn is walk B4: requests to a Service before and after one of its
// Deployment's pods is deleted and replaced.
func (s *Session) churn(w spec.Walk) (*Run, error) {
	svc := walk.ServiceOf(s.Topo, w)
	src, err := s.NS(w.From)
	if err != nil {
		return nil, err
	}
	from := s.Topo.Pod(w.From)
	ask := func(n int, counts map[string]int, c *Churn) {
		f, err := countAnswers(src, from.IP, svc.Dest(s.Topo, w), n, counts)
		if f > 0 {
			c.Failures, c.LastErr = c.Failures+f, err
		}
	}
	c := &Churn{Before: map[string]int{}, After: map[string]int{}, Connections: w.Connections}
	ask(w.Connections/2, c.Before, c)
	var victim string
	eps := svc.Endpoints(s.Topo)
	for _, ip := range walk.SortedAddrs(eps) {
		if p := s.Topo.Pod(eps[ip]); p != nil && strings.HasPrefix(p.Manifest, "Deployment ") && p.Name != w.From {
			victim = p.Name
			break
		}
	}
	if victim == "" {
		return nil, fmt.Errorf("walk %s: no endpoint of %s/%s belongs to a Deployment", w.Name, svc.Namespace, svc.Name)
	}
	if h, ok := s.open[victim]; ok { // an open handle would keep the old pod's namespace alive
		h.Close()
		delete(s.open, victim)
	}
	if c.Change, err = DeletePod(context.Background(), s.Lab, victim); err != nil {
		return nil, err
	}
	t, _, err := Load(s.Lab)
	if err != nil {
		return nil, err
	}
	s.Topo = t
	ask(w.Connections, c.After, c)
	return &Run{Churn: c}, nil
}
