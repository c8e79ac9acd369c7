//go:build linux

// Package churn deletes a pod as `kubectl delete pod` would and lets its
// Deployment replace it: the replacement's CNI ADD, kube-proxy's partial
// sync on every node, the app server's reload and the old pod's CNI DEL,
// each step recorded so that a delete stopped half-way can be resumed.
package churn

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// PodChange is what DeletePod did.
type PodChange struct {
	Deleted, Started spec.Pod
	// Synced is how long the endpoints and every node's rules took to follow.
	Synced time.Duration
	// Syncs are kube-proxy's syncs, one per node for each step that moved
	// the endpoints (terminating, ready, removed); each names its step.
	Syncs []kernel.NodeSync
	// Resumed is set when this call finished a delete that an earlier one
	// left half done (an error, a crash or kill -9 on the way).
	Resumed bool
}

// DeletePod removes a pod as `kubectl delete pod` would, in Kubernetes'
// order (spec.DeleteSteps): the pod's endpoint turns terminating, so
// kube-proxy sends no new connection to it while others are ready, and the
// load balancers deregister it; its Deployment's replacement starts with a
// new IP, and only once its app listens is its endpoint added and the pod
// registered; then the old endpoint goes, and the old pod with it. Each
// step is recorded before the next begins; if a delete stopped half-way,
// deleting the same pod again resumes it from its last step.
func DeletePod(ctx context.Context, lab, pod string) (*PodChange, error) {
	return DeletePodOf(ctx, lab, func(*spec.Topology) (string, error) { return pod, nil })
}

// DeletePodOf is DeletePod of the pod pick names, picked under the lab's
// lock from the pods as they are then (a pending delete is resumed
// whatever pick says, if pick names its pod).
func DeletePodOf(ctx context.Context, lab string, pick func(*spec.Topology) (string, error)) (*PodChange, error) {
	unlock, err := state.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	raw, st, err := state.LoadRaw(lab)
	if err != nil {
		return nil, err
	}
	pod, err := pick(raw.At(st.Churn, stepOf(st)))
	if err != nil {
		return nil, err
	}
	if pd := st.Churn.Pending; pd != nil {
		if pd.Deleted.Name != pod {
			return nil, fmt.Errorf("lab %s: the delete of pod %s stopped half-way (after step %q); run `labctl pod delete %s` to finish it first",
				lab, pd.Deleted.Name, pd.Step, pd.Deleted.Name)
		}
		ch, err := deleteSteps(ctx, raw, lab, st)
		if ch != nil {
			ch.Resumed = true
		}
		return ch, err
	}
	t := raw.At(st.Churn, "")
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
	st.Churn.Pending = &spec.PendingDelete{Deleted: *gone, Started: repl, Step: spec.StepRecorded}
	st.Namespaces = append(st.Namespaces, spec.NSName(lab, repl.Name))
	if err := st.Write(); err != nil {
		return nil, err
	}
	return deleteSteps(ctx, raw, lab, st)
}

// stepOf is the pending delete's step, or "" when none is pending.
func stepOf(st *state.State) string {
	if st.Churn.Pending != nil {
		return st.Churn.Pending.Step
	}
	return ""
}

// deleteSteps does the pending delete's steps from the one after the last
// recorded. raw is the lab's topology before any churn; each step's view
// of the pods is raw at that step (spec.Topology.At). Every step can run
// again after a crash in it: the replacement is rebuilt from nothing, a
// sync rewrites the changed Services whatever the kernel holds, a reload
// reconciles, and StopPod skips what is already gone.
func deleteSteps(ctx context.Context, raw *spec.Topology, lab string, st *state.State) (*PodChange, error) {
	pd := st.Churn.Pending
	nf := netfilter.For(st.Iptables)
	ch := &PodChange{Deleted: pd.Deleted, Started: pd.Started}
	start := time.Now()
	at := func(step string) *spec.Topology { return raw.At(st.Churn, step) }
	// sync moves every node's kube-proxy from the endpoints of the step
	// before to those of this one: a partial sync of the changed Service.
	sync := func(prev, step string) error {
		syncs, err := kernel.SyncKubeProxy(at(step), lab, nf, cluster.Endpoints(at(prev)))
		for i := range syncs {
			syncs[i].Step = step
		}
		ch.Syncs = append(ch.Syncs, syncs...)
		return err
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{spec.StepTerminating, func() error { return sync(spec.StepRecorded, spec.StepTerminating) }},
		{spec.StepStarted, func() error {
			// A crash may have left part of the replacement: start afresh.
			if err := kernel.StopPod(lab, pd.Started); err != nil {
				return err
			}
			if err := kernel.StartPod(at(spec.StepStarted), lab, pd.Started.Name, nf); err != nil {
				return err
			}
			_, err := kernel.WriteResolvConf(at(spec.StepStarted), lab, pd.Started)
			return err
		}},
		// The app server reads the recorded step: the old pod terminating
		// (still served, no longer a load balancer target), the new one
		// starting (served: its app listens, which is its readiness).
		{spec.StepListening, func() error { return agent.Reload(lab) }},
		{spec.StepReady, func() error { return sync(spec.StepListening, spec.StepReady) }},
		{spec.StepRegistered, func() error { return agent.Reload(lab) }},
		{spec.StepRemoved, func() error { return sync(spec.StepRegistered, spec.StepRemoved) }},
		// The app server stops serving the old pod, then its CNI DEL.
		{spec.StepDone, func() error {
			if err := agent.Reload(lab); err != nil {
				return err
			}
			return kernel.StopPod(lab, pd.Deleted)
		}},
	}
	for _, s := range steps {
		if spec.StepIndex(pd.Step) >= spec.StepIndex(s.name) {
			continue
		}
		err := ctx.Err()
		if err == nil {
			err = s.do()
		}
		if err != nil {
			return nil, fmt.Errorf("deleting pod %s stopped after step %q: %w (run `labctl pod delete %s` again to resume; `labctl down %s` removes the lab)",
				pd.Deleted.Name, pd.Step, err, pd.Deleted.Name, lab)
		}
		// A kill -9 inside a step (or at its fault point) leaves the
		// previous step recorded, so a resume redoes it; Ctrl-C stops
		// before the next step, with this one recorded.
		crash.Point(ctx, "pod-"+s.name)
		pd.Step = s.name
		if err := st.Write(); err != nil {
			return nil, err
		}
		if s.name == spec.StepRemoved {
			ch.Synced = time.Since(start)
		}
	}
	// The deleted pod's namespace leaves the list only once it is gone, so
	// down still removes it after a failure on the way.
	st.Churn.Pending = nil
	st.Namespaces = slices.DeleteFunc(st.Namespaces, func(n string) bool { return n == spec.NSName(lab, pd.Deleted.Name) })
	if err := st.Write(); err != nil {
		return nil, err
	}
	return ch, nil
}
