//go:build linux

// Package lab is labctl's library: build a lab from a topology, walk it,
// break it and take it down, from any Go program (a Ginkgo suite of your
// own needs no labctl binary). The packages under it do the work: spec
// (topologies), plan (the kernel state they render to), kernel (applying
// it), agent (the app server), run (walks), fault, churn and state.
//
//	l, err := lab.Start(ctx, topology, lab.UpOptions{Name: "mine"})
//	defer l.Down()
//	r, err := l.Walk("A3", t.TempDir())
//	if !r.Passed() { ... r.Report.FirstFailure() ... }
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrNotUp: the named lab has no state (never built, or down already).
	ErrNotUp = state.ErrNotUp
	// ErrNoLab: no lab is up, so none can be picked by default.
	ErrNoLab = state.ErrNoLab
	// ErrIncomplete: the lab's up was interrupted; only Down may act on it.
	ErrIncomplete = state.ErrIncomplete
	// ErrNotRoot: labs need root (they create network namespaces).
	ErrNotRoot = errors.New("not root")
	// ErrMissingTools: a program labs need is not installed.
	ErrMissingTools = errors.New("missing tools")
	// ErrNoWalk: the lab's topology has no walk of that name.
	ErrNoWalk = errors.New("no such walk")
)

// The types a caller of this package sees, from the packages that make them.
type (
	// State is what a lab records about itself.
	State = state.State
	// Session is an open lab for a series of walks (Lab wraps one).
	Session = run.Session
	// Run is one walk's outcome: its report, evidence and capture files.
	Run = run.Run
	// Fault is a break labctl can inject.
	Fault = fault.Fault
	// PodChange is what a pod delete did.
	PodChange = churn.PodChange
)

// Lab is a lab that is up, opened for walks, faults and pod churn.
type Lab struct {
	Name string
	s    *run.Session
}

// Start builds a lab (Up) and opens it. On error nothing of it is left.
func Start(ctx context.Context, t *spec.Topology, o UpOptions) (*Lab, error) {
	st, err := Up(ctx, t, o)
	if err != nil {
		return nil, err
	}
	l, err := Open(st.Lab)
	if err != nil {
		_, derr := Down(st.Lab)
		return nil, errors.Join(err, derr)
	}
	return l, nil
}

// Open opens a lab that is up (built by this program or by labctl up).
func Open(name string) (*Lab, error) {
	s, err := run.OpenSession(name)
	if err != nil {
		return nil, err
	}
	return &Lab{Name: name, s: s}, nil
}

// OpenSession opens a lab for walks (the lower-level form of Open).
func OpenSession(name string) (*Session, error) { return run.OpenSession(name) }

// Topology is the lab's topology as it is now (deleted pods replaced).
func (l *Lab) Topology() *spec.Topology { return l.s.Topo }

// Session is the lab's walk session, for what Lab does not wrap.
func (l *Lab) Session() *Session { return l.s }

// Walk runs the topology's walk of that name; its pcapng and ladder page
// go to dir. The run says whether it passed and, if not, where it failed.
func (l *Lab) Walk(name, dir string) (*Run, error) {
	w := l.s.Topo.Walk(name)
	if w == nil {
		return nil, fmt.Errorf("lab %s: %w %q", l.Name, ErrNoWalk, name)
	}
	return l.s.Walk(*w, dir)
}

// InjectFault breaks the lab as the named fault does (see Faults).
func (l *Lab) InjectFault(name string) error {
	_, err := fault.Inject(l.s, name)
	return err
}

// ClearFaults repairs every injected fault.
func (l *Lab) ClearFaults() error {
	_, err := fault.Clear(l.s)
	return err
}

// DeletePod deletes a pod as kubectl delete pod does; its Deployment
// replaces it, and the lab's topology follows.
func (l *Lab) DeletePod(ctx context.Context, pod string) (*PodChange, error) {
	ch, err := churn.DeletePod(ctx, l.Name, pod)
	if err != nil {
		return ch, err
	}
	s, err := run.OpenSession(l.Name)
	if err != nil {
		return ch, err
	}
	l.s.Close()
	l.s = s
	return ch, nil
}

// Close releases the lab's open namespaces; the lab stays up.
func (l *Lab) Close() { l.s.Close() }

// Down closes the lab and removes it.
func (l *Lab) Down() (*Removed, error) {
	l.s.Close()
	return Down(l.Name)
}

// Faults are the faults labctl can inject, by name.
var Faults = fault.Faults

// FaultNames lists the faults in order.
func FaultNames() []string { return fault.FaultNames() }

// Resolve picks the lab to act on: the one named, or the only one up.
func Resolve(name string) (string, error) { return state.Resolve(name) }

// Labs lists the labs that are up (or half built), sorted.
func Labs() ([]string, error) { return state.Labs() }

// ReadState loads a lab's state.
func ReadState(name string) (*State, error) { return state.Read(name) }

// Load reads the topology a lab was built from, as it is now.
func Load(name string) (*spec.Topology, *State, error) { return state.Load(name) }

// The app server of every lab runs in a process of its own: the program
// that built the lab, started again with the arguments below and this
// variable set. This init serves it, so any program that imports this
// package (labctl, a test binary, a user's suite) can build labs; Down
// recognises the process by its arguments.
func init() {
	if len(os.Args) != 4 || os.Args[1] != "agent" || os.Args[2] != "--lab" || os.Getenv(agent.EnvVar) != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := agent.ServeApps(ctx, os.Args[3], os.NewFile(3, "ready"))
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "labctl agent:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
