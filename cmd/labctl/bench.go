package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
)

func newBench() *cobra.Command {
	var nodes, pods, azs, runs, services, endpoints, requests int
	var lbTopology, lbClient, backend string
	var apps, sweep bool
	c := &cobra.Command{
		Use:   "bench",
		Short: "Time up and down of a generated lab against a plain iproute2 (ip -batch) baseline",
		Example: `  sudo labctl bench --nodes 20 --pods-per-node 50
  sudo labctl bench --sweep     # 250, 500 and 1000 pods: does time grow linearly?
  sudo labctl bench --services 1000 --endpoints 3
  sudo labctl bench --lb nlb-instance; sudo labctl bench --lb alb-ingress`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			if lbTopology != "" {
				t, err := loadTopology(lbTopology)
				if err != nil {
					return err
				}
				r, err := lab.BenchLB(cmd.Context(), t, lbClient, requests)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
				fmt.Fprintln(tw, "path\trequests\tfailed\trequests/s\tp50\tp99\tp50 / direct\t")
				for _, p := range r.Paths {
					ratio := "-"
					if p.RatioToDirect > 0 {
						ratio = fmt.Sprintf("%.2fx", p.RatioToDirect)
					}
					fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%v\t%v\t%s\t\n", p.Path, p.Requests, p.Failures, p.RPS,
						p.P50.Round(time.Microsecond), p.P99.Round(time.Microsecond), ratio)
				}
				tw.Flush()
				if r.Unhealthy > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "a target's health checks failing -> the NLB stops sending it new flows: %v\n",
						r.Unhealthy.Round(time.Millisecond))
				}
				return nil
			}
			if services > 0 {
				if err := spec.ValidateIptables(backend); err != nil {
					return fmt.Errorf("--iptables: %w", err)
				}
				r, err := lab.BenchKubeProxy(cmd.Context(), services, endpoints, backend)
				if err != nil {
					return err
				}
				ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
				fmt.Fprintf(cmd.OutOrStdout(), "kube-proxy on one node (iptables %s): %d Services x %d endpoints, %d nat rules, %d KB payload\n",
					backend, r.Services, r.Endpoints, r.Rules, r.PayloadBytes/1024)
				fmt.Fprintf(cmd.OutOrStdout(), "  full sync:    render %s + iptables-restore %s = %s\n", ms(r.Render), ms(r.Apply), ms(r.Render+r.Apply))
				fmt.Fprintf(cmd.OutOrStdout(), "  one endpoint: render %s + iptables-restore --noflush %s = %s (%d bytes)\n",
					ms(r.PartialRender), ms(r.PartialApp), ms(r.PartialRender+r.PartialApp), r.PartialBytes)
				return nil
			}
			sizes := [][2]int{{nodes, pods}}
			if sweep {
				sizes = [][2]int{{5, 50}, {10, 50}, {20, 50}}
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "nodes\tpods\tnamespaces\tveths\tup\tdown\tip -batch up\tip -batch down\tup/baseline\tper pod\t")
			for _, sz := range sizes {
				for i := 0; i < runs; i++ {
					r, err := lab.Bench(cmd.Context(), sz[0], sz[1], azs, apps)
					if err != nil {
						return err
					}
					ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
					perPod := "-"
					if r.Pods > 0 {
						perPod = fmt.Sprintf("%.0f µs", float64(r.Up.Microseconds())/float64(r.Pods))
					}
					fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%.2fx\t%s\t\n", r.Nodes, r.Pods, r.Namespaces, r.Veths,
						ms(r.Up), ms(r.Down), ms(r.BaselineUp), ms(r.BaselineDown),
						float64(r.Up)/float64(r.BaselineUp), perPod)
				}
			}
			return tw.Flush()
		},
	}
	c.Flags().IntVar(&nodes, "nodes", 20, "nodes")
	c.Flags().IntVar(&pods, "pods-per-node", 50, "pods on each node")
	c.Flags().IntVar(&azs, "azs", 3, "availability zones (one subnet each)")
	c.Flags().IntVar(&runs, "runs", 1, "runs of each size")
	c.Flags().BoolVar(&apps, "apps", false, "also start the pods' app servers, as up does by default")
	c.Flags().BoolVar(&sweep, "sweep", false, "run 250, 500 and 1000 pods")
	c.Flags().IntVar(&services, "services", 0, "instead: time kube-proxy's rules for this many Services on one node")
	c.Flags().IntVar(&endpoints, "endpoints", 3, "endpoints per Service, with --services")
	c.Flags().StringVar(&backend, "iptables", spec.IptablesNFT, "with --services: the iptables backend, nft or legacy")
	c.Flags().StringVar(&lbTopology, "lb", "", "instead: time requests through this topology's NLB or ALB against the pod directly")
	c.Flags().StringVar(&lbClient, "client", "client", "with --lb: the host that sends")
	c.Flags().IntVar(&requests, "requests", 1000, "with --lb: requests per path, each on a new connection")
	return c
}
