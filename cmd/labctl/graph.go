package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/draw"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

func newGraph() *cobra.Command {
	var lf labFlag
	var format, out string
	c := &cobra.Command{
		Use:   "graph [topology]",
		Short: "Draw a lab or a topology: SVG (through Graphviz), DOT or Mermaid",
		Example: `  labctl graph pod-networking -o pod-networking.svg
  labctl graph nlb-instance --format mermaid
  sudo labctl graph --lab clusterip -o lab.svg`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeTopologies,
		RunE: func(cmd *cobra.Command, args []string) error {
			var t *spec.Topology
			name := ""
			if len(args) == 1 {
				var err error
				if t, err = loadTopology(args[0]); err != nil {
					return err
				}
				if _, err := lab.Check(t); err != nil {
					return err
				}
				name = t.Name
			} else {
				l, err := lf.resolve()
				if err != nil {
					return err
				}
				if t, _, err = lab.Load(l); err != nil {
					return err
				}
				name = l
			}
			p := plan.Build(t, name)
			var data []byte
			switch format {
			case "dot":
				data = []byte(draw.DOT(p, t))
			case "mermaid":
				data = []byte(draw.Mermaid(p))
			case "svg":
				dot, err := exec.LookPath("dot")
				if err != nil {
					return fmt.Errorf("svg needs Graphviz's dot (sudo scripts/setup.sh installs it); --format dot or mermaid need nothing")
				}
				c := exec.Command(dot, "-Tsvg")
				c.Stdin = bytes.NewBufferString(draw.DOT(p, t))
				var stderr bytes.Buffer
				c.Stderr = &stderr
				if data, err = c.Output(); err != nil {
					return fmt.Errorf("dot: %w: %s", err, stderr.String())
				}
			default:
				return fmt.Errorf("format %q: use svg, dot or mermaid", format)
			}
			if out == "" || out == "-" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			return os.WriteFile(out, data, 0o644)
		},
	}
	lf.register(c.Flags())
	c.Flags().StringVar(&format, "format", "svg", "svg, dot or mermaid")
	c.Flags().StringVarP(&out, "output", "o", "", "file to write (default: standard output)")
	return c
}
