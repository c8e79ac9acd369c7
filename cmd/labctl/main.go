// Command labctl builds the Amazon EKS data path in network namespaces on
// one Linux host and proves each packet walk with real packets and captures.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
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
	}
	root.AddCommand(newUp(), newDown(), newList(), newStatus(), newExec(), newWalk(), newValidate(),
		newBench(), newPod(), newLB(), newFault(), newExercise(), newGraph(), newAgent(), newSoak())
	return root
}

// labFlag is the --lab flag of the commands that act on one lab.
type labFlag struct{ name string }

func (f *labFlag) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "lab", "", "lab name (may be left out when one lab is up)")
}

// resolve checks for root and names the lab to act on: the one given, or
// the only one up.
func (f *labFlag) resolve() (string, error) {
	if err := needRoot(); err != nil {
		return "", err
	}
	return lab.Resolve(f.name)
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
