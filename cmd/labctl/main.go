// Command labctl builds the Amazon EKS data path in network namespaces on
// one Linux host and proves each packet walk with real packets and captures.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "labctl:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "labctl",
		Short: "Rebuild the EKS data path in network namespaces and prove every packet walk",
		Long: `labctl builds a topology from topologies/ (a VPC router, nodes with ENIs, pods
joined by veths with the VPC CNI's routes, rules and iptables) inside network
namespaces on this host, then sends real traffic and checks every hop of each
walk in real captures. Nothing of a lab touches the host's own namespace.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.AddCommand(newUp(), newDown(), newList(), newStatus(), newExec(), newWalk(), newValidate(),
		newBench(), newPod(), newLB(), newFault(), newExercise(), newGraph(), newAgent(), newUse(), newSoak())
	return root
}

// labFlag is the --lab flag of the commands that act on one lab.
type labFlag struct{ name string }

func (f *labFlag) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "lab", "", "lab name (default: $LABCTL_LAB, then the lab of labctl use, then the only lab up)")
}

// resolve checks for root and names the lab to act on.
func (f *labFlag) resolve() (string, error) {
	if err := needRoot(); err != nil {
		return "", err
	}
	return resolveLab(f.name)
}

// resolveLab picks the lab as kubectl picks a context: --lab, then
// $LABCTL_LAB, then the user's current lab (labctl use, or the last up),
// then the only lab up. A lab named but not up is an error that lists the
// labs that are, so docs written without --lab work on a lab named anything.
func resolveLab(flag string) (string, error) {
	name, from, gone := flag, "--lab", ""
	if name == "" {
		name, from = os.Getenv("LABCTL_LAB"), "$LABCTL_LAB"
	}
	if name == "" {
		cur, err := state.Current(invokingUID())
		if err != nil {
			return "", err
		}
		name, from = cur, "the current lab; labctl use <lab> changes it"
		// A current lab that was removed since (by another user, a test,
		// the library) is forgotten: the only lab up is taken, as before.
		if cur != "" && state.Absent(cur) {
			name, gone = "", cur
		}
	}
	if name == "" {
		l, err := lab.Resolve("")
		if gone != "" && err != nil {
			err = fmt.Errorf("your current lab %s is down; %w", gone, err)
		}
		if err != nil && !errors.Is(err, lab.ErrNoLab) {
			return "", fmt.Errorf("%w, LABCTL_LAB or labctl use <lab>", err)
		}
		return l, err
	}
	if err := spec.ValidateLabName(name); err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	if state.Absent(name) {
		return "", notUp(name, from)
	}
	return name, nil
}

// notUp says a lab is not up and which labs are.
func notUp(name, from string) error {
	labs, _ := lab.Labs()
	up := "no lab is up (labctl up <topology>)"
	if len(labs) > 0 {
		up = "labs up: " + strings.Join(labs, ", ")
	}
	return fmt.Errorf("lab %s (%s) is %w; %s", name, from, lab.ErrNotUp, up)
}

// invokingUID is the user behind sudo, whose current lab labctl keeps.
func invokingUID() int {
	if os.Geteuid() == 0 {
		if u, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil && u >= 0 {
			return u
		}
	}
	return os.Getuid()
}

// self is labctl as it was invoked (bin/labctl, labctl, ./labctl), for the
// commands it suggests.
func self() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "labctl"
}

// commit is set by scripts/setup.sh (-ldflags -X main.commit=...), for
// builds where Go stamps no VCS information (-buildvcs=false, a worktree).
var commit string

// version is the module version and the commit labctl was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (built without module support)"
	}
	v := bi.Main.Version
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		rev = commit
	}
	if rev != "" {
		v += ", commit " + rev
		if dirty {
			v += " (with uncommitted changes)"
		}
	}
	return v + ", " + bi.GoVersion
}

func newUse() *cobra.Command {
	var none bool
	c := &cobra.Command{
		Use:   "use [lab]",
		Short: "Set the lab that commands act on when --lab is left out (like kubectl config use-context)",
		Long: `use makes a lab your current lab: walk, exec, status and the rest act on it
without --lab. labctl up and exercise start make the new lab current. Without
an argument it prints the current lab. $LABCTL_LAB and --lab take precedence.
The choice is kept per user (the user behind sudo) in /run/labctl/.current/,
so it goes away at reboot with the labs.`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeLabs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			uid := invokingUID()
			if none {
				return state.SetCurrent(uid, "")
			}
			if len(args) == 0 {
				cur, err := state.Current(uid)
				if err != nil {
					return err
				}
				if cur == "" {
					return errors.New("no current lab: labctl use <lab> sets one")
				}
				fmt.Fprintln(cmd.OutOrStdout(), cur)
				return nil
			}
			if err := spec.ValidateLabName(args[0]); err != nil {
				return err
			}
			if state.Absent(args[0]) {
				return notUp(args[0], "labctl use")
			}
			if err := state.SetCurrent(uid, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current lab: %s\n", args[0])
			return nil
		},
	}
	c.Flags().BoolVar(&none, "none", false, "forget the current lab")
	return c
}

// session resolves the lab and opens it for walks and faults.
func (f *labFlag) session() (*lab.Session, error) {
	l, err := f.resolve()
	if err != nil {
		return nil, err
	}
	return lab.OpenSession(l)
}

// topology resolves the lab and loads the topology it was built from.
func (f *labFlag) topology() (string, *spec.Topology, error) {
	l, err := f.resolve()
	if err != nil {
		return "", nil, err
	}
	t, _, err := lab.Load(l)
	return l, t, err
}

// needRoot is the first check of every command that touches the kernel.
func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("labctl must run as root (it works in network namespaces): try sudo labctl")
	}
	return nil
}
