package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/fault"
)

func newFault() *cobra.Command {
	var lf labFlag
	c := &cobra.Command{Use: "fault", Short: "Inject and clear realistic faults that break a walk at one hop"}
	lf.register(c.PersistentFlags())
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the faults, the topology each needs, and the walk it breaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FAULT\tTOPOLOGY\tBREAKS\tWHAT")
			for _, n := range lab.FaultNames() {
				f := lab.Faults[n]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, f.Topology, f.Walk, f.Summary)
			}
			return tw.Flush()
		},
	}, &cobra.Command{
		Use:   "inject <fault>",
		Short: "Break the lab (its topology must be the fault's)",
		Args:  cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return lab.FaultNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := lf.session()
			if err != nil {
				return err
			}
			defer s.Close()
			f, err := fault.Inject(s, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "injected %s: %s\nsee it: sudo labctl walk --lab %s %s\n", f.Name, f.Summary, s.Lab, f.Walk)
			return nil
		},
	}, &cobra.Command{
		Use:   "clear",
		Short: "Undo every injected fault",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := lf.session()
			if err != nil {
				return err
			}
			defer s.Close()
			cleared, err := fault.Clear(s)
			if len(cleared) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "cleared: %s\n", strings.Join(cleared, ", "))
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "no fault was injected")
			}
			return err
		},
	})
	return c
}

func newExercise() *cobra.Command {
	c := &cobra.Command{Use: "exercise", Short: "Troubleshooting tickets: a lab with a hidden fault to find and fix"}
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the tickets and their symptoms",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, e := range lab.Exercises() {
				f := lab.Faults[e.Fault]
				fmt.Fprintf(cmd.OutOrStdout(), "%s  (%s)  %s\n", e.Ticket, f.Topology, f.Symptom)
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "start <ticket>",
		Short: "Build the ticket's lab, broken the way the ticket says",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			e, err := lab.ExerciseByTicket(args[0])
			if err != nil {
				return err
			}
			f := lab.Faults[e.Fault]
			t, err := loadTopology(f.Topology)
			if err != nil {
				return err
			}
			name, err := lab.StartExercise(cmd.Context(), t, e)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\nlab %s is up (topology %s). Find the fault with tcpdump, ip and iptables:\n"+
				"  sudo labctl exec --lab %s <object> -- ...\nThen fix it and run: sudo labctl exercise check --lab %s\n",
				e.Ticket, f.Symptom, name, f.Topology, name, name)
			return nil
		},
	})
	var lf labFlag
	var out string
	check := &cobra.Command{
		Use:   "check",
		Short: "Run the ticket's walk: does it pass again after your fix?",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lf.resolve()
			if err != nil {
				return err
			}
			run, e, err := lab.CheckExercise(l, out)
			if err != nil {
				return err
			}
			if run.Passed() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: fixed. Walk %s passes again (capture: %s)\n", e.Ticket, lab.Faults[e.Fault].Walk, run.Pcap)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: not fixed yet. Walk %s still fails; its capture is %s\n", e.Ticket, lab.Faults[e.Fault].Walk, run.Pcap)
			return exitError{1}
		},
	}
	lf.register(check.Flags())
	check.Flags().StringVarP(&out, "out", "o", "captures", "directory for the walk's pcapng and ladder")
	c.AddCommand(check)
	return c
}
