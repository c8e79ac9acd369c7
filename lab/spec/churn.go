package spec

import (
	"fmt"
	"net/netip"
	"strings"
)

// Churn is what happened to a lab's pods after up: pods deleted, and the
// replacements their Deployments started. It is kept in the lab's state and
// replayed onto the topology, so every later command sees the same pods.
type Churn struct {
	Deleted []string `json:"deleted,omitempty"`
	Added   []Pod    `json:"added,omitempty"`
	// Released are the deleted pods' addresses. The VPC CNI keeps a
	// released IP out of use for a cooldown (IP_COOLDOWN_PERIOD, 30 s); the
	// lab never hands one out again, so a replacement never looks like the
	// pod it replaced.
	Released []netip.Addr `json:"released,omitempty"`
	// Pending is a delete that has not finished all its steps.
	Pending *PendingDelete `json:"pending,omitempty"`
}

// PendingDelete is a pod deletion in progress: the pod, its replacement,
// and the last step done.
type PendingDelete struct {
	Deleted Pod    `json:"deleted"`
	Started Pod    `json:"started"`
	Step    string `json:"step"`
}

// The steps of a pod delete, in order, as Kubernetes takes them: the
// deleted pod's endpoint turns terminating (no new connections while other
// endpoints are ready), the replacement starts, its app listens, only then
// is its endpoint added as ready (and registered with the load balancers),
// then the old endpoint is removed and the old pod goes.
const (
	StepRecorded    = "recorded"    // the change is in the state; nothing made yet
	StepTerminating = "terminating" // kube-proxy: the old endpoint terminating
	StepStarted     = "started"     // the replacement's CNI ADD is done
	StepListening   = "listening"   // the replacement's app listens (its readiness)
	StepReady       = "ready"       // kube-proxy: the new endpoint ready
	StepRegistered  = "registered"  // load balancers: the new pod a target, the old one not
	StepRemoved     = "removed"     // kube-proxy: the old endpoint gone
	StepDone        = "done"        // the old pod's CNI DEL is done
)

// DeleteSteps are the steps in order.
var DeleteSteps = []string{StepRecorded, StepTerminating, StepStarted, StepListening, StepReady, StepRegistered, StepRemoved, StepDone}

// StepIndex is a step's place in DeleteSteps (-1 if unknown).
func StepIndex(step string) int {
	for i, s := range DeleteSteps {
		if s == step {
			return i
		}
	}
	return -1
}

// ApplyChurn removes deleted pods and adds their replacements. The two
// pods of a pending delete stand as its last step left them: the deleted
// pod stays, terminating, until its endpoint is removed; the replacement
// is starting (not Ready) until its endpoint is added.
func (t *Topology) ApplyChurn(c Churn) {
	gone := map[string]bool{}
	for _, d := range c.Deleted {
		gone[d] = true
	}
	var pods []Pod
	for _, p := range t.Pods {
		if !gone[p.Name] {
			pods = append(pods, p)
		}
	}
	for _, p := range c.Added {
		if !gone[p.Name] {
			pods = append(pods, p)
		}
	}
	if pd := c.Pending; pd != nil {
		step := StepIndex(pd.Step)
		if step < StepIndex(StepRemoved) {
			old := pd.Deleted
			if step >= StepIndex(StepTerminating) {
				old.Phase = PodTerminating
			}
			pods = append(pods, old)
		}
		for i := range pods {
			if pods[i].Name == pd.Started.Name && step < StepIndex(StepReady) {
				pods[i].Phase = PodStarting
			}
		}
	}
	t.Pods = pods
}

// At is the topology raw (as written, no churn) with churn c applied, the
// pending delete of c standing at step.
func (raw *Topology) At(c Churn, step string) *Topology {
	v := *raw
	v.Pods = append([]Pod(nil), raw.Pods...)
	if c.Pending != nil {
		pd := *c.Pending
		pd.Step = step
		c.Pending = &pd
	}
	v.ApplyChurn(c)
	return &v
}

// Replacement is the pod a Deployment starts when one of its pods is
// deleted: the next replica name, on the same node and ENI, with the lowest
// address nobody holds or held, so the new pod visibly has a new IP.
func (t *Topology) Replacement(gone Pod, c Churn) (Pod, error) {
	if !strings.HasPrefix(gone.Manifest, "Deployment ") {
		return Pod{}, fmt.Errorf("pod %s belongs to no Deployment; nothing replaces it", gone.Name)
	}
	var deploy string
	for _, d := range t.Manifests.Deployments {
		if objKey("Deployment", d.Namespace, d.Name) == gone.Manifest {
			deploy = d.Name
		}
	}
	names := map[string]bool{}
	for _, p := range t.Pods {
		names[p.Name] = true
	}
	for _, d := range c.Deleted {
		names[d] = true
	}
	used := t.usedAddrs()
	for _, p := range c.Added {
		used[p.IP] = true
	}
	used[gone.IP] = true
	for _, ip := range c.Released {
		used[ip] = true
	}
	r := gone
	for i := 0; ; i++ {
		if n := ReplicaName(gone.Namespace, deploy, i); !names[n] {
			r.Name = n
			break
		}
	}
	if r.IP = t.nextFree(gone.Node, gone.ENI, used); !r.IP.IsValid() {
		return Pod{}, fmt.Errorf("no free address on node %s eth%d", gone.Node, gone.ENI)
	}
	return r, nil
}
