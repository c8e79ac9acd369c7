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
	var fo outputFlag
	faultList := &cobra.Command{
		Use:   "list",
		Short: "List the faults, the topology each needs, and the walk it breaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := fo.check(); err != nil {
				return err
			}
			if fo.machine() {
				doc := NamedList{TypeMeta: meta("FaultList"), Items: []map[string]string{}}
				for _, n := range lab.FaultNames() {
					f := lab.Faults[n]
					doc.Items = append(doc.Items, map[string]string{"name": n, "topology": f.Topology, "walk": f.Walk,
						"summary": f.Summary, "symptom": f.Symptom})
				}
				return fo.print(cmd.OutOrStdout(), doc)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FAULT\tTOPOLOGY\tBREAKS\tWHAT")
			for _, n := range lab.FaultNames() {
				f := lab.Faults[n]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, f.Topology, f.Walk, f.Summary)
			}
			return tw.Flush()
		},
	}
	fo.register(faultList)
	c.AddCommand(faultList, &cobra.Command{
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
			fmt.Fprintf(cmd.OutOrStdout(), "injected %s: %s\nsee it: sudo %s walk --lab %s %s\n", f.Name, f.Summary, self(), s.Lab, f.Walk)
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
	var eo outputFlag
	var name string
	exList := &cobra.Command{
		Use:   "list",
		Short: "List the tickets and their symptoms",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := eo.check(); err != nil {
				return err
			}
			if eo.machine() {
				doc := NamedList{TypeMeta: meta("ExerciseList"), Items: []map[string]string{}}
				for _, e := range lab.Exercises() {
					f := lab.Faults[e.Fault]
					doc.Items = append(doc.Items, map[string]string{"ticket": e.Ticket, "topology": f.Topology,
						"symptom": f.Symptom, "lab": lab.ExerciseLab(e.Ticket)})
				}
				return eo.print(cmd.OutOrStdout(), doc)
			}
			for _, e := range lab.Exercises() {
				f := lab.Faults[e.Fault]
				fmt.Fprintf(cmd.OutOrStdout(), "%s  (%s)  %s\n", e.Ticket, f.Topology, f.Symptom)
			}
			return nil
		},
	}
	eo.register(exList)
	start := &cobra.Command{
		Use:   "start <ticket> [--name N]",
		Short: "Build the ticket's lab, broken the way the ticket says, and make it the current lab",
		Args:  cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			var t []string
			for _, e := range lab.Exercises() {
				t = append(t, e.Ticket)
			}
			return t, cobra.ShellCompDirectiveNoFileComp
		},
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
			if cmd.Flags().Changed("name") && name == "" {
				return fmt.Errorf("--name is empty: give the lab a name, or leave --name out to use %s", lab.ExerciseLab(e.Ticket))
			}
			l := name
			if l == "" {
				l = lab.ExerciseLab(e.Ticket)
			}
			l, err = lab.StartExerciseAs(cmd.Context(), t, e, l)
			if err != nil {
				return err
			}
			useNew(cmd, l)
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\nlab %s is up (topology %s) and is your current lab. Find the fault with tcpdump, ip and iptables:\n"+
				"  sudo %s exec <object> -- ...\nThen fix it and run: sudo %s exercise check\n",
				e.Ticket, f.Symptom, l, f.Topology, self(), self())
			return nil
		},
	}
	start.Flags().StringVar(&name, "name", "", "lab name (default: the ticket's, e.g. ticket-108), so two people can work one ticket")
	c.AddCommand(exList, start)
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
	check.Flags().StringVar(&out, "captures-dir", "captures", "directory for the walk's pcapng and ladder")
	c.AddCommand(check)
	return c
}
