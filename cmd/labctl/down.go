package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/state"
)

func newDown() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "down [lab...]",
		Short: "Remove labs: their namespaces, processes and state (also after a crash)",
		Example: `  sudo labctl down pod-networking
  sudo labctl down --all`,
		ValidArgsFunction: completeLabs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			if all {
				labs, err := lab.Labs()
				if err != nil {
					return err
				}
				args = labs
			} else if len(args) == 0 {
				l, err := resolveLab("")
				if err != nil {
					return err
				}
				args = []string{l}
			}
			var errs []error
			for _, l := range args {
				rm, err := lab.Down(l)
				if err != nil {
					errs = append(errs, err)
				}
				if err == nil {
					forgetCurrent(l)
				}
				if rm != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "lab %s removed: %d namespaces, %d processes\n", l,
						len(rm.Namespaces), len(rm.Processes))
				}
			}
			if all {
				if gone, err := kernel.RemoveStrayEtcNetns(); len(gone) > 0 || err != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "removed resolv.conf files left from before a reboot: %s\n", strings.Join(gone, " "))
					errs = append(errs, err)
				}
			}
			if strays, _ := lab.Strays(); len(strays) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "not removed (labctl's prefix, but no lab state says labctl made them): %s\n",
					strings.Join(strays, " "))
			}
			return errors.Join(errs...)
		},
	}
	c.Flags().BoolVar(&all, "all", false, "remove every lab")
	return c
}

func completeLabs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	labs, _ := lab.Labs()
	return labs, cobra.ShellCompDirectiveNoFileComp
}

// forgetCurrent clears the user's current lab if it was the lab just
// removed, so the next command does not name a lab that is gone.
func forgetCurrent(l string) {
	uid := invokingUID()
	if cur, _ := state.Current(uid); cur == l {
		_ = state.SetCurrent(uid, "")
	}
}
