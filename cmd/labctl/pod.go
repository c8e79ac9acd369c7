package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/kubeproxy"
)

func newPod() *cobra.Command {
	var lf labFlag
	c := &cobra.Command{Use: "pod", Short: "List and delete a lab's pods (delete as kubectl delete pod does)"}
	lf.register(c.PersistentFlags())
	var o outputFlag
	list := &cobra.Command{
		Use:   "list",
		Short: "List pods with their node, ENI, IP and owner",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			l, err := lf.resolve()
			if err != nil {
				return err
			}
			t, st, err := lab.Load(l)
			if err != nil {
				return err
			}
			// A delete that stopped half-way: the old pod may still serve and
			// the replacement may not exist yet; say so rather than show the
			// change as done.
			status := map[string]string{}
			pods := t.Pods
			if pd := st.Churn.Pending; pd != nil {
				status[pd.Started.Name] = "being started (delete of " + pd.Deleted.Name + " pending: labctl pod delete " + pd.Deleted.Name + ")"
				if pd.Step != "done" {
					status[pd.Deleted.Name] = "being deleted (after step " + pd.Step + ")"
					pods = append(pods, pd.Deleted)
				}
			}
			sort.Slice(pods, func(i, j int) bool { return pods[i].Namespace+pods[i].Name < pods[j].Namespace+pods[j].Name })
			if o.machine() {
				doc := NamedList{TypeMeta: meta("PodList"), Lab: l, Items: []map[string]string{}}
				for _, p := range pods {
					owner, ps := p.Manifest, status[p.Name]
					if owner == "" {
						owner = "(lab document)"
					}
					if ps == "" {
						ps = "running"
					}
					doc.Items = append(doc.Items, map[string]string{"namespace": p.Namespace, "name": p.Name, "node": p.Node,
						"eni": fmt.Sprintf("eth%d", p.ENI), "ip": p.IP.String(), "owner": owner, "status": ps})
				}
				return o.print(cmd.OutOrStdout(), doc)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMESPACE\tPOD\tNODE\tENI\tIP\tOWNER\tSTATUS")
			for _, p := range pods {
				owner := p.Manifest
				if owner == "" {
					owner = "(lab document)"
				}
				ps := status[p.Name]
				if ps == "" {
					ps = "running"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\teth%d\t%s\t%s\t%s\n", p.Namespace, p.Name, p.Node, p.ENI, p.IP, owner, ps)
			}
			return tw.Flush()
		},
	}
	o.register(list)
	c.AddCommand(list, &cobra.Command{
		Use:   "delete <pod>",
		Short: "Delete a pod: its Deployment replaces it with a new IP; endpoints and rules follow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lf.resolve()
			if err != nil {
				return err
			}
			ch, err := churn.DeletePod(cmd.Context(), l, args[0])
			if err != nil {
				return err
			}
			if ch.Resumed {
				fmt.Fprintf(cmd.OutOrStdout(), "finished the delete of pod %s (%s), which had stopped half-way; %s (%s) runs on %s\n",
					ch.Deleted.Name, ch.Deleted.IP, ch.Started.Name, ch.Started.IP, ch.Started.Node)
				printNodeSyncs(cmd.OutOrStdout(), "", ch.Syncs)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pod %s (%s) deleted; %s (%s) started on %s; endpoints and rules followed in %v\n",
				ch.Deleted.Name, ch.Deleted.IP, ch.Started.Name, ch.Started.IP, ch.Started.Node, ch.Synced)
			printNodeSyncs(cmd.OutOrStdout(), "", ch.Syncs)
			return nil
		},
	}, &cobra.Command{
		Use:   "keepalive <pod> [duration]",
		Short: "Show or set the keep-alive idle timeout of a pod's app (0: connections stay open until the client closes them)",
		Long: "A pod's app closes a connection idle for its keep-alive timeout, as Node.js's server.keepAliveTimeout or gunicorn's --keep-alive do.\n" +
			"The lab's timers are scaled down 20 times: the ALB closes idle connections after " + agent.ALBIdleTimeout.String() + " (60 s).",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := lf.session()
			if err != nil {
				return err
			}
			defer s.Close()
			if s.Topo.Pod(args[0]) == nil {
				return fmt.Errorf("lab %s has no pod %s (labctl pod list shows them)", s.Lab, args[0])
			}
			if len(args) == 2 {
				d, err := time.ParseDuration(args[1])
				if err != nil || d < 0 {
					return fmt.Errorf("keep-alive %q: want a duration such as 250ms or 4s, or 0", args[1])
				}
				if err := agent.SetKeepAlive(s.Lab, args[0], d); err != nil {
					return err
				}
			}
			d, err := agent.KeepAliveOf(s.Lab, args[0])
			if err != nil {
				return err
			}
			if d == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: no keep-alive timeout (idle connections stay open until the client closes them)\n", args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: keep-alive timeout %v (the ALB's idle timeout is %v)\n", args[0], d, agent.ALBIdleTimeout)
			return nil
		},
	})
	return c
}

// printNodeSyncs says what kube-proxy rewrote on each node after a change.
func printNodeSyncs(w io.Writer, indent string, syncs []kernel.NodeSync) {
	names := func(cs []kubeproxy.Chain) string {
		const most = 6
		var ss []string
		for i, c := range cs {
			if i == most {
				ss = append(ss, fmt.Sprintf("and %d more", len(cs)-most))
				break
			}
			ss = append(ss, string(c))
		}
		return strings.Join(ss, ", ")
	}
	for _, s := range syncs {
		kind := "partial sync"
		if s.Full {
			kind = "full sync (the partial restore failed: " + s.Fallback + ")"
		}
		step := ""
		if s.Step != "" {
			step = " (" + s.Step + ")"
		}
		fmt.Fprintf(w, "%skube-proxy on %s%s: %s, %d bytes", indent, s.Node, step, kind, s.Bytes)
		if len(s.Written) > 0 {
			fmt.Fprintf(w, "; rewrote %s", names(s.Written))
		}
		if len(s.Deleted) > 0 {
			fmt.Fprintf(w, "; deleted %s", names(s.Deleted))
		}
		if s.ConntrackDeleted > 0 {
			fmt.Fprintf(w, "; removed %d stale UDP conntrack entries", s.ConntrackDeleted)
		}
		fmt.Fprintln(w)
	}
}
