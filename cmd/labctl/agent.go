package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab/agent"
)

// newAgent is the lab's app server, started by up and ended by down.
func newAgent() *cobra.Command {
	var labName string
	c := &cobra.Command{
		Use:    "agent --lab L",
		Short:  "Serve the apps of every pod and host of a lab (started by up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return agent.ServeApps(cmd.Context(), labName, os.NewFile(3, "ready"))
		},
	}
	c.Flags().StringVar(&labName, "lab", "", "lab name")
	_ = c.MarkFlagRequired("lab")
	return c
}
