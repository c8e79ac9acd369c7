//go:build linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/pki"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// RequiredTools are the programs every lab needs on the host: iptables for
// the nodes' rules (the lab's backend adds its own restore and save),
// tcpdump and ip for the person looking at the lab.
var RequiredTools = []string{"iptables", "tcpdump", "ip"}

// Preflight checks what up needs before anything is created: root, the
// tools, and that the lab's name is free.
func Preflight(lab string, tools ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: labctl must run as root (it creates network namespaces): try sudo labctl", ErrNotRoot)
	}
	var missing []string
	for _, t := range slices.Concat(RequiredTools, tools) {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; install them with sudo scripts/setup.sh "+
			"(Debian packages iptables, tcpdump, iproute2)", ErrMissingTools, strings.Join(missing, ", "))
	}
	if _, err := os.Stat(state.Dir(lab)); err == nil {
		return fmt.Errorf("lab %q is already up (state in %s): use --name for a second copy, or labctl down %s",
			lab, state.Dir(lab), lab)
	}
	stray, err := ns.List(spec.NSPrefix + lab + ".")
	if err != nil {
		return err
	}
	if len(stray) > 0 {
		return fmt.Errorf("namespaces named like lab %q exist but no lab state does: %s; they were not made "+
			"by this labctl, so it will not touch them (ip netns del NAME removes one)", lab, strings.Join(stray, " "))
	}
	return nil
}

// UpOptions tunes Up.
type UpOptions struct {
	// Name of the lab; defaults to the topology's name.
	Name string
	// NoApps skips the app server in pods and hosts (benchmarks).
	NoApps bool
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

// Up builds a lab from a validated topology. On any error, and when ctx is
// cancelled (Ctrl-C), it removes everything it created before returning.
// It holds the lab's lock until the lab is complete or rolled back, so a
// down started meanwhile waits for it.
func Up(ctx context.Context, t *spec.Topology, o UpOptions) (st *state.State, err error) {
	name := o.Name
	if name == "" {
		name = t.Name
	}
	if err := spec.ValidateLabName(name); err != nil {
		return nil, err
	}
	nf := netfilter.For(t.Iptables)
	if err := Preflight(name, nf.Tools()...); err != nil {
		return nil, err
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	warnings, err := Check(t)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		logf("warning: %s", w)
	}
	p := plan.Build(t, name)
	src := t.File // a built-in topology's name ("labctl:topologies/...") stays as it is
	if _, err := os.Stat(t.File); err == nil {
		src, _ = filepath.Abs(t.File)
	}
	topo, err := topologyBytes(t)
	if err != nil {
		return nil, fmt.Errorf("saving the topology with the lab: %w", err)
	}
	st = &state.State{Lab: name, Topology: src, Created: time.Now().UTC(), Namespaces: p.NSNames(), Iptables: t.Iptables,
		KubeProxyMode: t.KubeProxy.Mode}
	files := map[string][]byte{"topology.yaml": topo}
	// The control plane's CA and serving certificates go with the state
	// (0600 files in the 0700 state directory), so down, or down after a
	// crash, removes them with it.
	if err := controlPlaneFiles(t, files); err != nil {
		return nil, err
	}
	unlock, err := state.Begin(st, files)
	if err != nil {
		return nil, err
	}
	defer unlock()
	defer func() {
		if err != nil {
			if _, derr := down(name); derr != nil {
				err = fmt.Errorf("%w (and rolling back failed: %v)", err, derr)
			}
		}
	}()
	crash.Point(ctx, "state")
	start := time.Now()
	if _, err := kernel.ApplyProbed(ctx, func(k plan.Kernel) *plan.Plan { return plan.BuildFor(t, name, k) }, nf); err != nil {
		return nil, err
	}
	crash.Point(ctx, "configured")
	// Each file under /etc/netns goes through here, so that down knows
	// whether up created /etc/netns itself.
	resolv := func(object string, write func() (bool, error)) error {
		created, err := write()
		if created && !st.CreatedEtcNetns {
			st.CreatedEtcNetns = true
			if err := st.Write(); err != nil {
				return err
			}
		}
		if err != nil {
			return fmt.Errorf("writing %s's resolv.conf: %w", object, err)
		}
		return nil
	}
	if len(t.Manifests.Services) > 0 {
		for _, pod := range t.Pods {
			if err := resolv(pod.Name, func() (bool, error) { return kernel.WriteResolvConf(t, name, pod) }); err != nil {
				return nil, err
			}
		}
	}
	// Internet hosts resolve the lab's public names through its Route 53.
	if in := t.Internet; in != nil && in.DNS != nil {
		for _, h := range in.Hosts {
			if err := resolv(h.Name, func() (bool, error) { return kernel.WriteInternetResolvConf(name, h.Name, in.DNS.IP) }); err != nil {
				return nil, err
			}
		}
	}
	// Nodes resolve the cluster endpoint through the VPC resolver.
	if t.ControlPlane != nil {
		for _, n := range t.Nodes {
			if err := resolv(n.Name, func() (bool, error) {
				return kernel.WriteInternetResolvConf(name, n.Name, spec.VPCResolver(t.VPC.CIDR))
			}); err != nil {
				return nil, err
			}
		}
	}
	logf("kernel state of %d namespaces in %v", len(p.Namespaces), time.Since(start).Round(time.Millisecond))
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted: start nothing more, roll back
	}
	if !o.NoApps {
		pid, err := agent.Start(ctx, name)
		if err != nil {
			return nil, err
		}
		st.AgentPID = pid
		crash.Point(ctx, "agent")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st.Complete = true
	return st, st.Write()
}

// topologyBytes is the text the topology was parsed from (comments and
// all), or the topology itself when it was generated in memory.
func topologyBytes(t *spec.Topology) ([]byte, error) {
	if len(t.Source) > 0 {
		return t.Source, nil
	}
	return yaml.Marshal(t)
}

// FaultPhases are the points of up where LABCTL_FAULT_AT can strike.
var FaultPhases = []string{"state", "namespaces", "veths", "configured", "agent"}

// Removed is what Down took away.
type Removed struct {
	Namespaces []string
	Processes  []int
}

// DownWait bounds how long Down waits for another command (an up still
// building, a pod delete) to release the lab.
var DownWait = 2 * time.Minute

// Down removes a lab: its processes, every namespace with its prefix, and
// its state. It works from what the kernel and the state directory show,
// so it needs no topology and works after a crash. It only touches
// namespaces of a lab that has state: those were made by labctl. It waits
// for a command that holds the lab's lock (an up still building) to finish.
func Down(lab string) (*Removed, error) {
	// The name becomes a path under the state root that is removed: ".."
	// or "." would name /run or every lab's state, so only names up accepts pass.
	if err := spec.ValidateLabName(lab); err != nil {
		return nil, err
	}
	if _, err := os.Stat(state.Dir(lab)); err != nil {
		return nil, fmt.Errorf("lab %q is %w (no %s)", lab, ErrNotUp, state.Dir(lab))
	}
	unlock, err := state.TryLock(lab, DownWait)
	if err != nil {
		if errors.Is(err, state.ErrNotUp) {
			return nil, fmt.Errorf("lab %q is %w (it went while down waited)", lab, ErrNotUp)
		}
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(state.Dir(lab)); err != nil { // an up that rolled back while down waited
		return &Removed{}, nil
	}
	return down(lab)
}

// down is Down with the lab's lock held.
func down(lab string) (*Removed, error) {
	rm := &Removed{}
	names, err := ns.List(spec.NSPrefix + lab + ".")
	if err != nil {
		return nil, err
	}
	st, err := state.Read(lab)
	switch {
	case err == nil:
		// Only what the lab recorded before creating it: a namespace someone
		// else put under the lab's prefix stays (labctl down lists it).
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(st.Namespaces, n) })
	case !state.Absent(lab):
		// A state that cannot be read says nothing of what the lab made;
		// taking every namespace under the prefix could take someone else's.
		return nil, fmt.Errorf("lab %s: %w; remove that file to let down remove every namespace named %s%s.*", lab, err, spec.NSPrefix, lab)
	}
	rm.Processes = kernel.KillProcesses(names, strings.Join(agent.Args(lab), "\x00"))
	var errs []error
	for _, n := range names {
		if err := ns.Delete(n); err != nil {
			errs = append(errs, err)
			continue
		}
		rm.Namespaces = append(rm.Namespaces, n)
	}
	created := st != nil && st.CreatedEtcNetns
	if err := kernel.RemoveResolvConfs(lab, created); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(state.Dir(lab)); err != nil {
			errs = append(errs, err)
		}
	}
	return rm, errors.Join(errs...)
}

// Strays are namespaces that carry the lab prefix but belong to no lab with
// state: labctl did not make them and leaves them alone.
func Strays() ([]string, error) {
	all, err := ns.List(spec.NSPrefix)
	if err != nil {
		return nil, err
	}
	labs, _ := state.Labs()
	var out []string
outer:
	for _, n := range all {
		for _, l := range labs {
			if strings.HasPrefix(n, spec.NSPrefix+l+".") {
				continue outer
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// RestartApps starts a lab's app server again (it died, or was killed):
// the pods' apps, cluster DNS, kube-proxy's health servers, the load
// balancers' health checks and the ALB. A running one is ended first.
func RestartApps(ctx context.Context, lab string) (int, error) {
	unlock, err := state.TryLock(lab, DownWait)
	if err != nil {
		return 0, err
	}
	defer unlock()
	st, err := state.Read(lab)
	if err != nil {
		return 0, err
	}
	if !st.Complete {
		return 0, fmt.Errorf("lab %s is %w: labctl down %s", lab, ErrIncomplete, lab)
	}
	if st.Churn.Pending != nil {
		return 0, fmt.Errorf("lab %s: the delete of pod %s stopped half-way; run `labctl pod delete %s` to finish it first",
			lab, st.Churn.Pending.Deleted.Name, st.Churn.Pending.Deleted.Name)
	}
	kernel.KillProcesses(nil, strings.Join(agent.Args(lab), "\x00"))
	pid, err := agent.Start(ctx, lab)
	if err != nil {
		return 0, err
	}
	st.AgentPID = pid
	return pid, st.Write()
}

// controlPlaneFiles adds the lab CA and the control plane's serving
// certificates to the files a new lab's state starts with.
func controlPlaneFiles(t *spec.Topology, files map[string][]byte) error {
	if t.ControlPlane == nil {
		return nil
	}
	var api, nodes []netip.Addr
	for i := 0; i < spec.APIServerCount; i++ {
		api = append(api, spec.APIServerIP(i))
		if x := t.XENIOf(i); x != nil {
			api = append(api, x.IP)
		}
	}
	for _, n := range t.Nodes {
		for _, e := range n.ENIs {
			nodes = append(nodes, e.IP)
		}
	}
	pf, err := pki.Files(t.EndpointName(), api, nodes)
	if err != nil {
		return fmt.Errorf("making the lab CA: %w", err)
	}
	maps.Copy(files, pf)
	return nil
}
