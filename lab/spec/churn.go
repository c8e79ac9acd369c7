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
// and the last step done (the lab package names the steps).
type PendingDelete struct {
	Deleted Pod    `json:"deleted"`
	Started Pod    `json:"started"`
	Step    string `json:"step"`
}

// ApplyChurn removes deleted pods and adds their replacements.
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
	t.Pods = pods
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
