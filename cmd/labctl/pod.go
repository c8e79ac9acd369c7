package main

import (
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
)

func newPod() *cobra.Command {
	var lf labFlag
	c := &cobra.Command{Use: "pod", Short: "List and delete a lab's pods (delete as kubectl delete pod does)"}
	lf.register(c.PersistentFlags())
	c.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List pods with their node, ENI, IP and owner",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, t, err := lf.topology()
			if err != nil {
				return err
			}
			pods := t.Pods
			sort.Slice(pods, func(i, j int) bool { return pods[i].Namespace+pods[i].Name < pods[j].Namespace+pods[j].Name })
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tPOD\tNODE\tENI\tIP\tOWNER")
			for _, p := range pods {
				owner := p.Manifest
				if owner == "" {
					owner = "(lab document)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\teth%d\t%s\t%s\n", p.Namespace, p.Name, p.Node, p.ENI, p.IP, owner)
			}
			return tw.Flush()
		},
	}, &cobra.Command{
		Use:   "delete <pod>",
		Short: "Delete a pod: its Deployment replaces it with a new IP; endpoints and rules follow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lf.resolve()
			if err != nil {
				return err
			}
			ch, err := lab.DeletePod(l, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pod %s (%s) deleted; %s (%s) started on %s; endpoints and rules followed in %v\n",
				ch.Deleted.Name, ch.Deleted.IP, ch.Started.Name, ch.Started.IP, ch.Started.Node, ch.Synced)
			return nil
		},
	})
	return c
}
