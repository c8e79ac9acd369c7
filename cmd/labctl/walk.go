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
	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

func newWalk() *cobra.Command {
	var lf labFlag
	var out string
	var o outputFlag
	var verbose, explain bool
	c := &cobra.Command{
		Use:   "walk [--lab L] [walk...]",
		Short: "Send real traffic and check every hop of the lab's walks in captures",
		Long: `walk runs one or all of the lab's walks. For each, it opens a capture on every
interface of the ends, their nodes and the VPC router, sends real traffic from
inside the source, and checks each hop's MACs, IPs and ports against what the
VPC CNI's routing says must happen. Exit status 0 only if every hop matched.
Each run writes a pcapng with one interface per namespace/interface.`,
		ValidArgsFunction: completeWalks(&lf),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			s, err := lf.session()
			if err != nil {
				return err
			}
			defer s.Close()
			l := s.Lab
			s.Explain = explain
			if cleaned, err := s.ClearStaleTraces(); len(cleaned) > 0 || err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "removed the TRACE rules of a walk --explain that did not finish, in %v (%v)\n", cleaned, err)
			}
			walks := s.Topo.Walks
			if len(args) > 0 {
				walks = nil
				for _, a := range args {
					w := s.Topo.Walk(a)
					if w == nil {
						return fmt.Errorf("lab %s has no walk %q (it has: %s)", l, a, walkNames(s.Topo))
					}
					walks = append(walks, *w)
				}
			}
			failed := 0
			doc := WalkResultList{TypeMeta: meta("WalkResultList"), Lab: l, Items: []WalkResult{}}
			tables := cmd.OutOrStdout()
			if o.machine() {
				tables = io.Discard
			}
			for _, w := range walks {
				// A walk that could not run is a failed walk: say why and go
				// on, so the summary covers every walk asked for.
				res, err := runOne(tables, s, w, out, verbose)
				if err != nil {
					fmt.Fprintf(tables, "ERROR %s: %v\n\n", w.Name, err)
					res = errorResult(w, err)
				}
				doc.Items = append(doc.Items, res)
				if res.Verdict != "PASS" {
					failed++
				}
			}
			doc.Passed, doc.Failed = len(walks)-failed, failed
			if o.machine() {
				if err := o.print(cmd.OutOrStdout(), doc); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%d passed, %d failed\n", len(walks)-failed, failed)
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	lf.register(c.Flags())
	c.Flags().StringVar(&out, "captures-dir", "captures", "directory for the pcapng files and ladder pages")
	o.register(c)
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "show why each hop happens")
	c.Flags().BoolVarP(&explain, "explain", "x", false,
		"trace every decision in the kernel: iptables rules hit (TRACE), policy rule and route, neighbour, conntrack")
	return c
}

func walkNames(t *spec.Topology) string {
	var n []string
	for _, w := range t.Walks {
		n = append(n, w.Name)
	}
	return strings.Join(n, ", ")
}

// runOne runs a walk, prints its table to w and returns its result.
func runOne(w io.Writer, s *lab.Session, wk spec.Walk, out string, verbose bool) (WalkResult, error) {
	if wk.Kind == spec.WalkState {
		rep, err := s.State()
		if err != nil {
			return WalkResult{}, err
		}
		printState(w, wk, rep)
		return stateResult(wk, rep), nil
	}
	run, err := s.Walk(wk, out)
	if err != nil {
		return WalkResult{}, err
	}
	switch {
	case run.Spread != nil:
		printSpread(w, wk, run.Spread)
	case run.Churn != nil:
		printChurn(w, wk, run.Churn)
	default:
		printWalk(w, run, verbose)
	}
	res := runResult(wk, run)
	if res.Verdict != verdictOf(run.Passed()) {
		res.Verdict = verdictOf(run.Passed()) // the run's own verdict decides, whatever its kind
	}
	return res, nil
}

// completeWalks completes the walks of the lab the command would act on.
func completeWalks(lf *labFlag) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		l, err := resolveLab(lf.name)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		t, _, err := lab.Load(l)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []string
		for _, w := range t.Walks {
			names = append(names, w.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func printSpread(w io.Writer, wk spec.Walk, s *run.Spread) {
	to := wk.Service
	if wk.LoadBalancer != "" {
		to = "the load balancer of " + wk.LoadBalancer + " in " + wk.AZ + " " + wk.Path
	}
	fmt.Fprintf(w, "walk %s: %s\n  %d connections from %s to %s port %d\n", wk.Name, wk.Title, s.Connections, wk.From,
		to, wk.Port)
	for _, e := range s.Endpoints {
		where := "remote"
		switch {
		case e.Local && wk.LoadBalancer != "":
			where = "same AZ"
		case wk.LoadBalancer != "":
			where = "other AZ"
		case e.Local:
			where = "local"
		}
		if e.Excluded {
			where += ", not used"
		}
		fmt.Fprintf(w, "  %-32s on %-8s %-11s (%s)  %3d answers\n", e.Pod, e.Node, e.AZ, where, s.Counts[e.Pod])
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if s.Failures > 0 {
		fmt.Fprintf(w, "  %d connections failed, the last with: %v\n", s.Failures, s.LastErr)
	}
	c := s.CrossAZ
	fmt.Fprintf(w, "  cross-AZ: %d of %d requests (%.0f%%) crossed an AZ boundary; %d bytes (%d packets%s): "+
		"$%.2f a month at %d requests/s, at $%.2f/GB each way\n",
		s.CrossedRequests, s.Answered(), 100*s.CrossShare(), c.Bytes, c.Packets, crossingList(c), s.MonthlyCost(),
		walk.SpreadRequestRate, walk.CrossAZPricePerGB)
	switch {
	case s.Passed() && s.Rule != "":
		fmt.Fprintf(w, "PASS %s: every endpoint in use answered, no other (%s)\n\n", wk.Name, s.Rule)
	case s.Passed():
		fmt.Fprintf(w, "PASS %s: every endpoint answered, remote ones too\n\n", wk.Name)
	case s.Rule != "":
		fmt.Fprintf(w, "FAIL %s: an endpoint not in use answered, or one in use never did (%s)\n\n", wk.Name, s.Rule)
	default:
		fmt.Fprintf(w, "FAIL %s: an endpoint never answered or a connection failed\n\n", wk.Name)
	}
}

func crossingList(c walk.CrossAZ) string {
	if len(c.Crossings) == 0 {
		return ""
	}
	return "; " + crossings(c)
}

func printChurn(w io.Writer, wk spec.Walk, c *run.Churn) {
	fmt.Fprintf(w, "walk %s: %s\n", wk.Name, wk.Title)
	if c.Change != nil {
		fmt.Fprintf(w, "  deleted %s (%s); its Deployment started %s (%s) on %s\n", c.Change.Deleted.Name, c.Change.Deleted.IP,
			c.Change.Started.Name, c.Change.Started.IP, c.Change.Started.Node)
		fmt.Fprintf(w, "  endpoints and every node's rules followed in %v\n", c.Change.Synced.Round(time.Millisecond))
		printNodeSyncs(w, "  ", c.Change.Syncs)
	}
	fmt.Fprintf(w, "  answers before: %v\n  answers after:  %v\n", c.Before, c.After)
	if c.Failures > 0 {
		fmt.Fprintf(w, "  %d requests failed, the last with: %v\n", c.Failures, c.LastErr)
	}
	if c.Passed() {
		fmt.Fprintf(w, "PASS %s: the Service kept answering; the new pod serves, the deleted one never again\n\n", wk.Name)
	} else {
		fmt.Fprintf(w, "FAIL %s: %s\n\n", wk.Name, c.Why())
	}
}

func printWalk(w io.Writer, run *lab.Run, verbose bool) {
	r := run.Report
	e := r.Expectation
	fmt.Fprintf(w, "walk %s: %s\n  %s %s (%s) -> %s (%s)", e.Walk.Name, e.Walk.Title, strings.ToUpper(e.Proto),
		e.From.Object, e.From.IP, e.To.Object, e.To.IP)
	if e.Endpoint != nil {
		fmt.Fprintf(w, " -> endpoint %s (%s)", e.Endpoint.Object, e.Endpoint.IP)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintln(tw, "  #\tLEG\tWHERE\tDIR\tSEEN (src MAC > dst MAC, src > dst)\tFRAME\tVERDICT")
	row := func(i int, h walk.HopResult) {
		seen, frame := "-", "-"
		if h.Seen != nil {
			seen, frame = h.Seen.Summary(), fmt.Sprint(h.Seen.Frame)
		}
		verdict := h.Verdict
		if h.Verdict != walk.OK {
			verdict += ": " + h.Describe()
		}
		if h.NAT != "" {
			fmt.Fprintf(tw, "\t\t\t\t  nat: %s\t\t\n", h.NAT)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", i, h.Leg, h.Point, h.Dir, seen, frame, verdict)
		if verbose {
			fmt.Fprintf(tw, "\t\t\t\t  why: %s\t\t\n", h.Why)
		}
		for _, l := range run.Explain[i-1] {
			fmt.Fprintf(tw, "\t\t\t\t  kernel: %s\t\t\n", l)
		}
	}
	for i, h := range r.Hops {
		row(i+1, h)
	}
	for _, h := range r.Unexpected {
		row(0, h)
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if c := r.CrossAZ; c.Packets > 0 {
		fmt.Fprintf(w, "  cross-AZ: %d packets, %d bytes crossed an AZ boundary (%s): $%.3g this run, $%.3g per million such runs, at $%.2f/GB each way\n",
			c.Packets, c.Bytes, crossings(c), c.Cost(), c.Cost()*1e6, walk.CrossAZPricePerGB)
	} else {
		fmt.Fprintln(w, "  cross-AZ: nothing crossed an AZ boundary")
	}
	for _, ev := range run.NATEvidence {
		chains := strings.Join(ev.Chains, ", ")
		if chains == "" {
			chains = "none"
		}
		if len(ev.NFT) > 0 {
			fmt.Fprintf(w, "  %s kernel: nftables objects the walk's packets matched (nft monitor trace): %s\n", ev.Node, strings.Join(ev.NFT, ", "))
		} else {
			fmt.Fprintf(w, "  %s kernel: KUBE chains whose counters moved: %s\n", ev.Node, chains)
		}
		for _, c := range ev.Conntrack {
			fmt.Fprintf(w, "  %s conntrack: %s\n", ev.Node, c)
		}
	}
	if f := r.FirstFailure(); f == nil && r.Failed {
		fmt.Fprintf(w, "FAIL %s: every hop matched, but the exchange did not end as the walk expects (see the notes)\n", e.Walk.Name)
	} else if f != nil {
		fmt.Fprintf(w, "FAIL %s: first differing hop: %s\n", e.Walk.Name, f.Describe())
	} else {
		fmt.Fprintf(w, "PASS %s: %d hops matched; nothing of the flow anywhere else among %d capture points\n",
			e.Walk.Name, len(r.Hops), len(e.Points))
	}
	fmt.Fprintf(w, "  capture: %s\n  ladder:  %s\n\n", run.Pcap, run.Ladder)
}

func printState(w io.Writer, wk spec.Walk, r *walk.StateReport) {
	fmt.Fprintf(w, "walk %s: %s (kernel state read back from every node and pod)\n", wk.Name, wk.Title)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	failed := 0
	for _, c := range r.Checks {
		v := "ok"
		if !c.OK {
			v = "FAIL (kernel has: " + c.Got + ")"
			failed++
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Object, c.What, v)
	}
	tw.Flush()
	if failed > 0 {
		fmt.Fprintf(w, "FAIL %s: %d of %d facts differ\n\n", wk.Name, failed, len(r.Checks))
		return
	}
	fmt.Fprintf(w, "PASS %s: %d facts hold\n\n", wk.Name, len(r.Checks))
}

func crossings(c walk.CrossAZ) string {
	var parts []string
	for k, n := range c.Crossings {
		parts = append(parts, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
