package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/lb"
)

func newLB() *cobra.Command {
	var lf labFlag
	var o outputFlag
	c := &cobra.Command{
		Use:   "lb [--lab L]",
		Short: "List the lab's load balancers, their listeners and target groups, with each target's health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			l, t, err := lf.topology()
			if err != nil {
				return err
			}
			m, err := lb.Build(t)
			if err != nil {
				return err
			}
			health, _ := agent.ReadHealth(l)
			if o.machine() {
				doc := LoadBalancerList{TypeMeta: meta("LoadBalancerList"), Lab: l, Items: []map[string]string{}, Targets: []TargetOut{}}
				for _, b := range m.LBs {
					doc.Items = append(doc.Items, map[string]string{"name": b.Name, "kind": b.Kind, "scheme": b.Scheme,
						"owner": b.Owner, "controller": b.Controller, "crossZone": fmt.Sprint(b.CrossZone)})
					for _, g := range b.Groups() {
						for _, tg := range g.Targets {
							h := health[g.Name+"/"+tg.String()]
							st := h.State
							if st == "" {
								st = "unknown"
							}
							doc.Targets = append(doc.Targets, TargetOut{LoadBalancer: b.Name, TargetGroup: g.Name,
								Target: tg.String(), Health: st, Reason: h.Reason})
						}
					}
				}
				return o.print(cmd.OutOrStdout(), doc)
			}
			w := cmd.OutOrStdout()
			for _, p := range m.Pending {
				fmt.Fprintf(w, "%s: pending, no load balancer: %s\n", p.Owner, p.Reason)
			}
			for _, b := range m.LBs {
				fmt.Fprintf(w, "%s  %s %s, %s, by the %s, cross-zone %v\n", b.Name, b.Scheme, strings.ToUpper(b.Kind), b.Owner,
					b.Controller, b.CrossZone)
				// Which nodes the LB's DNS name answers, from the recorded health.
				_, out := b.InDNS(func(g *lb.TargetGroup, tg lb.Target) bool {
					return health[g.Name+"/"+tg.String()].State == agent.StateHealthy
				})
				for _, n := range b.Nodes {
					pub := ""
					if n.Public.IsValid() {
						pub = ", public " + n.Public.String()
					}
					dns := ", in DNS"
					if why, gone := out[n.AZ]; gone {
						dns = ", out of DNS: " + why
					}
					if health == nil {
						dns = ""
					}
					fmt.Fprintf(w, "  node %s  %s in %s%s%s\n", n.AZ, n.IP, n.Subnet.Name, pub, dns)
				}
				for _, li := range b.Listeners {
					fmt.Fprintf(w, "  listener %s:%d", li.Protocol, li.Port)
					if li.Group != nil {
						fmt.Fprintf(w, " -> %s", li.Group.Name)
					}
					fmt.Fprintln(w)
				}
				for _, r := range b.Rules {
					fmt.Fprintf(w, "  rule %d  path %s -> %s\n", r.Priority, strings.Join(r.Paths, " or "), r.Group.Name)
				}
				if b.Kind == lb.ALB {
					fmt.Fprintln(w, "  rule default -> fixed response 404")
					fmt.Fprintf(w, "  to targets: connect timeout %v (lab: %v), idle timeout %v (lab: %v), then 504\n",
						lb.ALBConnectTimeout, lb.ALBConnectTimeout/lb.TimeScale, lb.ALBIdleTimeout, lb.ALBIdleTimeout/lb.TimeScale)
				}
				for _, g := range b.Groups() {
					hc := g.HealthCheck
					interval, timeout := hc.Scaled()
					fmt.Fprintf(w, "  target group %s: %s targets, client IP preserved %v, cross-zone %v\n", g.Name, g.TargetType,
						g.PreserveClientIP, g.CrossZone)
					fmt.Fprintf(w, "    health check %s port %s path %s, every %v (lab: %v), timeout %v (lab: %v), healthy %d / unhealthy %d\n",
						hc.Protocol, hcPort(hc), hc.Path, hc.Interval, interval, hc.Timeout, timeout, hc.Healthy, hc.Unhealthy)
					if len(g.Targets) == 0 {
						fmt.Fprintln(w, "    no registered targets")
					}
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					for _, tg := range g.Targets {
						h := health[g.Name+"/"+tg.String()]
						state := h.State
						if state == "" {
							state = "unknown (app server not running?)"
						}
						if h.Reason != "" && h.State != agent.StateHealthy {
							state += " (" + h.Reason + ")"
						}
						fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\n", tg, tg.Object, tg.AZ, state)
					}
					tw.Flush()
				}
			}
			if len(m.LBs) == 0 && len(m.Pending) == 0 {
				fmt.Fprintln(w, "no load balancers")
			}
			return nil
		},
	}
	lf.register(c.Flags())
	o.register(c)
	return c
}

func hcPort(hc lb.HealthCheck) string {
	if hc.Port == 0 {
		return "traffic-port"
	}
	return fmt.Sprint(hc.Port)
}
