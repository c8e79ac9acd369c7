package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
)

func newExec() *cobra.Command {
	var lf labFlag
	c := &cobra.Command{
		Use:   "exec [--lab L] <node|pod|host|vpc> [-- <command> [args...]]",
		Short: "Run a command (ip, ping, tcpdump; a shell if none) inside a lab object's namespace",
		Example: `  sudo labctl exec pod51 -- ip route
  sudo labctl exec node51 -- tcpdump -eni eth0
  sudo labctl exec --lab mine vpc -- tcpdump -p -eni br-a
  sudo labctl exec pod51            # a shell ($SHELL, else /bin/bash)`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeObjects(&lf, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lf.resolve()
			if err != nil {
				return err
			}
			command := args[1:]
			if len(command) > 0 && command[0] == "--" {
				command = command[1:]
			}
			if len(command) == 0 {
				// No command: a shell, as docker exec -it and kubectl exec do.
				sh := os.Getenv("SHELL")
				if sh == "" {
					sh = "/bin/bash"
				}
				command = []string{sh}
			}
			name := spec.NSName(l, args[0])
			if _, err := os.Stat(ns.Path(name)); err != nil {
				return fmt.Errorf("lab %s has no object %q (sudo %s status --lab %s lists them)", l, args[0], self(), l)
			}
			ip, err := exec.LookPath("ip")
			if err != nil {
				return err
			}
			// ip netns exec also mounts the namespace's own /sys, so tools
			// that read /sys/class/net see the lab's interfaces.
			argv := append([]string{"ip", "netns", "exec", name}, command...)
			return syscall.Exec(ip, argv, os.Environ())
		},
	}
	lf.register(c.Flags())
	c.Flags().SetInterspersed(false)
	return c
}
