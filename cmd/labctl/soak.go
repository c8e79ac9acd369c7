package main

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
)

func newSoak() *cobra.Command {
	var count int
	var seedList string
	var keep bool
	c := &cobra.Command{
		Use:   "soak [--seeds N | --seed S,S...]",
		Short: "Build generated topologies one after another and run every walk derived for each",
		Long: `soak generates varied topologies from seeds (VPC CIDRs, AZs, ENIs, prefix
delegation, NLBs and ALBs of every kind, hosts and the internet), brings each
up, runs every walk derived for it and takes it down. A failing seed prints
the seed and its topology, so it reproduces: labctl soak --seed S.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needRoot(); err != nil {
				return err
			}
			var seeds []int64
			if seedList != "" {
				for _, f := range strings.Split(seedList, ",") {
					n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
					if err != nil {
						return fmt.Errorf("--seed: %q is not a seed", f)
					}
					seeds = append(seeds, n)
				}
			} else {
				r := rand.New(rand.NewSource(time.Now().UnixNano()))
				for i := 0; i < count; i++ {
					seeds = append(seeds, r.Int63n(1_000_000_000))
				}
			}
			dir, err := os.MkdirTemp("", "labctl-soak-")
			if err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(cmd.ErrOrStderr(), "captures and topologies go to %s\n", dir)
			} else {
				defer os.RemoveAll(dir)
			}
			w := cmd.OutOrStdout()
			failedSeeds, walks := 0, 0
			start := time.Now()
			for i, seed := range seeds {
				res, err := lab.RunSeed(cmd.Context(), seed, fmt.Sprintf("soak%d", i), fmt.Sprintf("%s/%d", dir, seed))
				walks += res.Walks
				if err == nil && len(res.Failures) == 0 {
					fmt.Fprintf(w, "PASS seed %d: %d walks; faults that failed their walk at their own hop: %v\n", seed, res.Walks, res.Faults)
					continue
				}
				failedSeeds++
				fmt.Fprintf(w, "FAIL seed %d (labctl soak --seed %d):\n", seed, seed)
				if err != nil {
					fmt.Fprintf(w, "  %v\n", err)
				}
				for _, f := range res.Failures {
					fmt.Fprintf(w, "  %s\n", f)
				}
				fmt.Fprintf(w, "--- topology ---\n%s\n", res.YAML)
			}
			fmt.Fprintf(w, "soak: %d seeds, %d walks, %d seeds failed, in %v\n", len(seeds), walks, failedSeeds,
				time.Since(start).Round(time.Second))
			if failedSeeds > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	c.Flags().IntVar(&count, "seeds", len(spec.GeneratedSeeds), "how many random seeds")
	c.Flags().StringVar(&seedList, "seed", "", "run these seeds (comma-separated) instead")
	c.Flags().BoolVar(&keep, "keep-captures", false, "keep the captures and topologies (their directory is printed)")
	return c
}
