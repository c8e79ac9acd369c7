package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/topologies"
)

func newUp() *cobra.Command {
	var name string
	var noApps, resume bool
	c := &cobra.Command{
		Use:   "up <topology> | up --resume <lab>",
		Short: "Build a lab from a topology (a name built into labctl, or a path)",
		Example: `  sudo labctl up pod-networking
  sudo labctl up ./my-topology.yaml --name mine
  sudo labctl up --resume mine      # start a lab's app server again`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTopologies,
		RunE: func(cmd *cobra.Command, args []string) error {
			if resume {
				if err := needRoot(); err != nil {
					return err
				}
				pid, err := lab.RestartApps(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "lab %s: app server started again, pid %d\n", args[0], pid)
				return nil
			}
			if cmd.Flags().Changed("name") && name == "" {
				return fmt.Errorf("--name is empty: give the lab a name, or leave --name out to use the topology's")
			}
			t, err := loadTopology(args[0])
			if err != nil {
				return err
			}
			start := time.Now()
			st, err := lab.Up(cmd.Context(), t, lab.UpOptions{Name: name, NoApps: noApps,
				Log: func(f string, a ...any) { fmt.Fprintf(cmd.ErrOrStderr(), f+"\n", a...) }})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is up: %d namespaces in %v\n", st.Lab, len(st.Namespaces),
				time.Since(start).Round(time.Millisecond))
			useNew(cmd, st.Lab)
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s is your current lab (labctl use changes it)\n", st.Lab)
			fmt.Fprintf(cmd.OutOrStdout(), "next: sudo %s walk   |   sudo %s exec <node|pod> -- ip route\n", self(), self())
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "lab name (default: the topology's name)")
	c.Flags().BoolVar(&noApps, "no-apps", false, "do not start the pods' app servers")
	c.Flags().BoolVar(&resume, "resume", false, "start the app server of a lab that is up again (it died or was killed)")
	return c
}

// isTopologyPath says whether arg names a file: it contains a "/" or ends
// in .yaml. Anything else is a topology built into labctl, so a file that
// happens to lie in the working directory is never picked up by surprise.
func isTopologyPath(arg string) bool {
	return strings.ContainsRune(arg, '/') || strings.HasSuffix(arg, ".yaml")
}

// loadTopology loads "pod-networking" from the embedded topologies, or a
// path from the file system.
func loadTopology(arg string) (*spec.Topology, error) {
	if isTopologyPath(arg) {
		return spec.Load(arg)
	}
	t, _, err := topologies.LoadWithSource(arg)
	return t, err
}

// useNew makes a lab just built the user's current lab, as kubectl does
// with the context of a new cluster; failing to is only worth a warning.
func useNew(cmd *cobra.Command, l string) {
	if err := state.SetCurrent(invokingUID(), l); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: lab %s is up but could not be made the current lab: %v\n", l, err)
	}
}

func completeTopologies(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return topologies.Names(), cobra.ShellCompDirectiveNoFileComp
}

func newValidate() *cobra.Command {
	return &cobra.Command{
		Use:               "validate <topology>...",
		Short:             "Check topologies without building anything (no root needed)",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeTopologies,
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, a := range args {
				t, err := loadTopology(a)
				var warnings []string
				if err == nil {
					warnings, err = lab.Check(t)
				}
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					bad++
					continue
				}
				for _, w := range warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d nodes, %d pods, %d hosts, %d walks)\n", t.File,
					len(t.Nodes), len(t.Pods), len(t.Hosts), len(t.Walks))
			}
			if bad > 0 {
				return exitError{1}
			}
			return nil
		},
	}
}
