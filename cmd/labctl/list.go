package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
)

func newList() *cobra.Command {
	var topologies bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the labs that are up (or, with --topologies, the topologies to build)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if topologies {
				for _, n := range topologyNames() {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			}
			labs, err := lab.Labs()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LAB\tSTATE\tNAMESPACES\tUP SINCE\tTOPOLOGY")
			for _, l := range labs {
				st, err := lab.ReadState(l)
				if err != nil {
					fmt.Fprintf(tw, "%s\tbroken (%v)\t\t\t\n", l, err)
					continue
				}
				state := "up"
				if !st.Complete {
					state = "incomplete (labctl down " + l + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", l, state, len(st.Namespaces),
					st.Created.Local().Format(time.DateTime), st.Topology)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&topologies, "topologies", false, "list the topologies labctl can build")
	return c
}
