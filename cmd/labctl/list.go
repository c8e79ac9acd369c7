package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/topologies"
)

func newList() *cobra.Command {
	var topos bool
	var o outputFlag
	c := &cobra.Command{
		Use:   "list",
		Short: "List the labs that are up (or, with --topologies, the topologies built into labctl)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if topos {
				doc, err := topologyList()
				if err != nil {
					return err
				}
				if o.machine() {
					return o.print(cmd.OutOrStdout(), doc)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPOLOGY\tWALKS\tDESCRIPTION")
				for _, t := range doc.Items {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, strings.Join(t.Walks, " "), t.Description)
				}
				return tw.Flush()
			}
			doc, err := labList()
			if err != nil {
				return err
			}
			if o.machine() {
				return o.print(cmd.OutOrStdout(), doc)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tLAB\tSTATE\tNAMESPACES\tUP SINCE\tTOPOLOGY")
			for _, l := range doc.Items {
				cur := ""
				if l.Name == doc.Current {
					cur = "*"
				}
				st := l.State
				switch l.State {
				case "broken":
					st = "broken (" + l.Error + ")"
				case "incomplete":
					st = "incomplete (labctl down " + l.Name + ")"
				}
				since := ""
				if t, err := time.Parse(time.RFC3339, l.Created); err == nil {
					since = t.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", cur, l.Name, st, l.Namespaces, since, l.Topology)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&topos, "topologies", false, "list the topologies labctl can build, with their walks")
	o.register(c)
	return c
}

// topologyList is every embedded topology with its description and walks.
func topologyList() (TopologyList, error) {
	doc := TopologyList{TypeMeta: meta("TopologyList"), Items: []TopologyItem{}}
	for _, n := range topologies.Names() {
		t, err := topologies.Load(n)
		if err != nil {
			return doc, err
		}
		doc.Items = append(doc.Items, TopologyItem{Name: n, Description: t.Description, Walks: topologies.WalkNames(t)})
	}
	return doc, nil
}

func labList() (LabList, error) {
	doc := LabList{TypeMeta: meta("LabList"), Items: []LabItem{}}
	doc.Current, _ = state.Current(invokingUID())
	labs, err := lab.Labs()
	if err != nil {
		return doc, err
	}
	for _, l := range labs {
		st, err := lab.ReadState(l)
		if err != nil {
			doc.Items = append(doc.Items, LabItem{Name: l, State: "broken", Error: err.Error()})
			continue
		}
		item := LabItem{Name: l, State: "up", Namespaces: len(st.Namespaces), Created: st.Created.UTC().Format(time.RFC3339),
			Topology: st.Topology}
		if !st.Complete {
			item.State = "incomplete"
		}
		doc.Items = append(doc.Items, item)
	}
	return doc, nil
}
