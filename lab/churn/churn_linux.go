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
	// Syncs are kube-proxy's syncs, one per node.
	Syncs []kernel.NodeSync
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
	unlock, err := state.Lock(lab)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t, st, err := state.Load(lab)
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
	if err := st.Write(); err != nil {
		return nil, err
	}
	t.ApplyChurn(spec.Churn{Deleted: []string{gone.Name}, Added: []spec.Pod{repl}})
	return deleteSteps(ctx, t, lab, st)
}

// deleteSteps does the pending delete's steps from the one after the last
// recorded. t already has the change applied. Every step can run again
// after a crash in it: the replacement is rebuilt from nothing, the sync
// rewrites the changed Services whatever the kernel holds, and stopPod
// skips what is already gone.
func deleteSteps(ctx context.Context, t *spec.Topology, lab string, st *state.State) (*PodChange, error) {
	pd := st.Churn.Pending
	nf := netfilter.For(st.Iptables)
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
		crash.Point(ctx, "pod-"+name)
		pd.Step = name
		return st.Write()
	}
	if pd.Step == stepRecorded {
		err := step(stepStarted, func() error {
			// A crash may have left part of the replacement: start afresh.
			if err := kernel.StopPod(lab, pd.Started); err != nil {
				return err
			}
			if err := kernel.StartPod(t, lab, pd.Started.Name, nf); err != nil {
				return err
			}
			_, err := kernel.WriteResolvConf(t, lab, pd.Started)
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
			ch.Syncs, err = kernel.SyncKubeProxy(t, lab, nf, cluster.Endpoints(&before))
			return err
		})
		if err != nil {
			return nil, err
		}
		ch.Synced = time.Since(start)
	}
	err := step(stepDone, func() error {
		if err := agent.Reload(lab); err != nil {
			return err
		}
		return kernel.StopPod(lab, pd.Deleted)
	})
	if err != nil {
		return nil, err
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
