//go:build linux

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

// RequiredTools are the programs every lab needs on the host: iptables for
// the nodes' rules (the lab's backend adds its own restore and save),
// tcpdump and ip for the person looking at the lab.
var RequiredTools = []string{"iptables", "tcpdump", "ip"}

// Preflight checks what up needs before anything is created: root, the
// tools, and that the lab's name is free.
func Preflight(lab string, iptablesTools ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("labctl must run as root (it creates network namespaces): try sudo labctl")
	}
	var missing []string
	for _, t := range slices.Concat(RequiredTools, iptablesTools) {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s; install them with sudo scripts/setup.sh "+
			"(Debian packages iptables, tcpdump, iproute2)", strings.Join(missing, ", "))
	}
	if _, err := os.Stat(Dir(lab)); err == nil {
		return fmt.Errorf("lab %q is already up (state in %s): use --name for a second copy, or labctl down %s",
			lab, Dir(lab), lab)
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
func Up(ctx context.Context, t *spec.Topology, o UpOptions) (st *State, err error) {
	name := o.Name
	if name == "" {
		name = t.Name
	}
	if err := spec.ValidateLabName(name); err != nil {
		return nil, err
	}
	ipt := IptablesFor(t.Iptables)
	if err := Preflight(name, ipt.Restore, ipt.Save); err != nil {
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
	src, _ := filepath.Abs(t.File)
	st = &State{Lab: name, Topology: src, Created: time.Now().UTC(), Namespaces: p.NSNames(), Iptables: t.Iptables}
	if err := os.MkdirAll(StateRoot, 0o755); err != nil {
		return nil, fmt.Errorf("creating lab state: %w", err)
	}
	// Mkdir, not MkdirAll: of two ups with one name only one may own the
	// lab, or the loser's rollback would take down the winner's.
	if err := os.Mkdir(Dir(name), 0o755); errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("lab %q is already up (state in %s)", name, Dir(name))
	} else if err != nil {
		return nil, fmt.Errorf("creating lab state: %w", err)
	}
	defer func() {
		if err != nil {
			if _, derr := Down(name); derr != nil {
				err = fmt.Errorf("%w (and rolling back failed: %v)", err, derr)
			}
		}
	}()
	if err := st.write(); err != nil {
		return nil, err
	}
	if err := saveTopology(t, TopologyCopy(name)); err != nil {
		return nil, fmt.Errorf("saving the topology with the lab: %w", err)
	}
	faultPoint(ctx, "state")
	start := time.Now()
	if err := apply(ctx, p); err != nil {
		return nil, err
	}
	faultPoint(ctx, "configured")
	if len(t.Manifests.Services) > 0 {
		for _, pod := range t.Pods {
			created, err := writeResolvConf(t, name, pod)
			if created {
				st.CreatedEtcNetns = true
				if err := st.write(); err != nil {
					return nil, err
				}
			}
			if err != nil {
				return nil, fmt.Errorf("writing %s's resolv.conf: %w", pod.Name, err)
			}
		}
	}
	logf("kernel state of %d namespaces in %v", len(p.Namespaces), time.Since(start).Round(time.Millisecond))
	if err := ctx.Err(); err != nil {
		return nil, err // interrupted: start nothing more, roll back
	}
	if !o.NoApps {
		pid, err := startAgent(ctx, name)
		if err != nil {
			return nil, err
		}
		st.AgentPID = pid
		faultPoint(ctx, "agent")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st.Complete = true
	return st, st.write()
}

// saveTopology keeps the user's file as written (comments and all), or the
// topology itself when it was generated in memory.
func saveTopology(t *spec.Topology, to string) error {
	b, err := os.ReadFile(t.File)
	if err != nil {
		if b, err = yaml.Marshal(t); err != nil {
			return err
		}
	}
	return os.WriteFile(to, b, 0o644)
}

// AgentLog is where the lab's app server writes.
func AgentLog(lab string) string { return filepath.Join(Dir(lab), "agent.log") }

// startAgent runs `labctl agent --lab NAME` detached and waits until it says
// every listener is open (a line on fd 3), so walks never race the apps.
func startAgent(ctx context.Context, lab string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(AgentLog(lab), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if AgentCommand != "" {
		self = AgentCommand
	}
	cmd := exec.Command(self, AgentArgs(lab)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("starting the app server: %w", err)
	}
	w.Close()
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if strings.TrimSpace(line) == "ready" {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("the app server exited before it was ready (%v); see %s", err, AgentLog(lab))
	}()
	select {
	case err := <-ready:
		return pid, err
	case <-ctx.Done():
		return pid, ctx.Err()
	}
}

// AgentCommand is the labctl binary that runs the app server; empty means
// this executable (a library user such as a test sets it to a built labctl).
var AgentCommand string

// FaultPhases are the points of up where LABCTL_FAULT_AT can strike.
var FaultPhases = []string{"state", "namespaces", "veths", "configured", "agent"}

// faultPoint lets tests crash or interrupt up at a named phase, exactly:
// LABCTL_FAULT_AT=<phase> with LABCTL_FAULT_SIGNAL=KILL (the default: a
// kill -9 half-way through up) or INT (Ctrl-C, after which up must roll back).
func faultPoint(ctx context.Context, phase string) {
	if os.Getenv("LABCTL_FAULT_AT") != phase {
		return
	}
	sig := syscall.SIGKILL
	if os.Getenv("LABCTL_FAULT_SIGNAL") == "INT" {
		sig = syscall.SIGINT
	}
	_ = syscall.Kill(os.Getpid(), sig)
	if done := ctx.Done(); done != nil {
		<-done // SIGINT cancels ctx; SIGKILL never returns
	}
}

// AgentArgs is the command line of a lab's app server; Down recognises the
// process by it.
func AgentArgs(lab string) []string { return []string{"agent", "--lab", lab} }

// Removed is what Down took away.
type Removed struct {
	Namespaces []string
	Processes  []int
}

// Down removes a lab: its processes, every namespace with its prefix, and
// its state. It works from what the kernel and the state directory show,
// so it needs no topology and works after a crash. It only touches
// namespaces of a lab that has state: those were made by labctl.
func Down(lab string) (*Removed, error) {
	// The name becomes a path under StateRoot that is removed: ".." or "."
	// would name /run or every lab's state, so only names up accepts pass.
	if err := spec.ValidateLabName(lab); err != nil {
		return nil, err
	}
	if _, err := os.Stat(Dir(lab)); err != nil {
		return nil, fmt.Errorf("lab %q is not up (no %s)", lab, Dir(lab))
	}
	rm := &Removed{}
	names, err := ns.List(spec.NSPrefix + lab + ".")
	if err != nil {
		return nil, err
	}
	st, err := ReadState(lab)
	switch {
	case err == nil:
		// Only what the lab recorded before creating it: a namespace someone
		// else put under the lab's prefix stays (labctl down lists it).
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(st.Namespaces, n) })
	case !stateAbsent(lab):
		// A state that cannot be read says nothing of what the lab made;
		// taking every namespace under the prefix could take someone else's.
		return nil, fmt.Errorf("lab %s: %w; remove that file to let down remove every namespace named %s%s.*", lab, err, spec.NSPrefix, lab)
	}
	rm.Processes = killLabProcesses(lab, names)
	var errs []error
	for _, n := range names {
		if err := ns.Delete(n); err != nil {
			errs = append(errs, err)
			continue
		}
		rm.Namespaces = append(rm.Namespaces, n)
	}
	created := st != nil && st.CreatedEtcNetns
	if err := removeResolvConfs(lab, created); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(Dir(lab)); err != nil {
			errs = append(errs, err)
		}
	}
	return rm, errors.Join(errs...)
}

// killLabProcesses ends the lab's app server and every process living in
// one of its namespaces (tcpdump or a shell started with labctl exec): a
// process would otherwise keep its namespace, and its links, alive.
func killLabProcesses(lab string, names []string) []int {
	return killProcesses(names, strings.Join(AgentArgs(lab), "\x00"))
}

// killInNamespaces ends every process living in the named namespaces.
func killInNamespaces(names []string) []int { return killProcesses(names, "") }

// killProcesses ends processes in the namespaces and, if agentArgs is set,
// the process whose arguments after argv[0] are agentArgs.
func killProcesses(names []string, agentArgs string) []int {
	inodes := map[string]bool{}
	for _, n := range names {
		if ino, err := ns.Inode(n); err == nil {
			inodes[fmt.Sprintf("net:[%d]", ino)] = true
		}
	}
	var victims []int
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if inodes[link] || (agentArgs != "" && hasArgs(pid, agentArgs)) {
			victims = append(victims, pid)
		}
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Wait until they are gone so their namespaces can be freed.
	for _, pid := range victims {
		for i := 0; i < 200; i++ {
			if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
				break
			}
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") {
				break // a zombie holds no namespace
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return victims
}

// hasArgs reports whether process pid runs with these arguments after
// argv[0] (NUL-separated), whatever the binary's path.
func hasArgs(pid int, args string) bool {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	parts := strings.SplitN(string(cmdline), "\x00", 2)
	return len(parts) == 2 && strings.TrimRight(parts[1], "\x00") == args
}

// AgentRunning reports whether the lab's app server, recorded in its state
// as pid, is still running. Walks need it: it plays the pods' apps, DNS,
// kube-proxy's health servers and the ALB.
func AgentRunning(lab string, pid int) bool {
	return pid > 0 && hasArgs(pid, strings.Join(AgentArgs(lab), "\x00"))
}

// Strays are namespaces that carry the lab prefix but belong to no lab with
// state: labctl did not make them and leaves them alone.
func Strays() ([]string, error) {
	all, err := ns.List(spec.NSPrefix)
	if err != nil {
		return nil, err
	}
	labs, _ := Labs()
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

// Load reads the topology a lab was built from (its own copy).
func Load(lab string) (*spec.Topology, *State, error) {
	st, err := ReadState(lab)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(TopologyCopy(lab))
	if err != nil {
		return nil, nil, fmt.Errorf("lab %s: %w", lab, err)
	}
	t, err := spec.Parse(st.Topology, lab, b)
	if err != nil {
		return nil, nil, err
	}
	t.ApplyChurn(st.Churn)
	return t, st, nil
}

// stateAbsent: the lab has no state file at all (a crash before up wrote
// it). Any other failure to see it is not absence.
func stateAbsent(lab string) bool {
	_, err := os.Stat(statePath(lab))
	return errors.Is(err, fs.ErrNotExist)
}
