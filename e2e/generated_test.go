package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/spec"
)

// generatedSeeds are the seeds the generated spec runs: LABCTL_SEEDS
// ("3,17"), or LABCTL_RANDOM_SEEDS random ones (a soak), or the fixed list
// the unit tests check covers every feature.
func generatedSeeds() []int64 {
	if v := os.Getenv("LABCTL_SEEDS"); v != "" {
		var out []int64
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				panic(fmt.Sprintf("LABCTL_SEEDS: %q is not a seed: %v", f, err))
			}
			out = append(out, n)
		}
		return out
	}
	if v := os.Getenv("LABCTL_RANDOM_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			panic(fmt.Sprintf("LABCTL_RANDOM_SEEDS: %q is not a positive count", v))
		}
		r := rand.New(rand.NewSource(time.Now().UnixNano()))
		out := make([]int64, n)
		for i := range out {
			out[i] = r.Int63n(1_000_000_000)
		}
		return out
	}
	return spec.GeneratedSeeds
}

// runSeed brings up one generated topology, runs every derived walk and
// returns the failures, each with its first mismatch.
func runSeed(seed int64) (failures []string, yaml []byte) {
	GinkgoHelper()
	name := fmt.Sprintf("%sg%d", labPrefix, seed%1_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := lab.RunSeed(ctx, seed, name, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred(), "seed %d:\n%s", seed, res.YAML)
	for _, f := range res.Faults {
		classesInjected[strings.Fields(f)[0]]++
	}
	expectNothingLeft(name)
	Expect(res.Walks).To(BeNumerically(">", 3), "seed %d derived too few walks", seed)
	return res.Failures, res.YAML
}

// classesInjected counts, per fault class, the seeds it was injected on.
var classesInjected = map[string]int{}

var _ = Describe("generated topologies", Ordered, ContinueOnFailure, Label("generated"), func() {
	AfterAll(func() {
		if os.Getenv("LABCTL_SEEDS") != "" || os.Getenv("LABCTL_RANDOM_SEEDS") != "" || CurrentSpecReport().Failed() {
			return
		}
		// The fixed seeds cover every fault class: each failed its walk at
		// its own hop on at least one topology nobody wrote by hand.
		for _, c := range fault.Classes {
			Expect(classesInjected[c.Name]).To(BeNumerically(">", 0), "fault class %s applied to no fixed seed", c.Name)
		}
	})
	for _, seed := range generatedSeeds() {
		It(fmt.Sprintf("seed %d: every derived walk passes", seed), func() {
			failures, yaml := runSeed(seed)
			if len(failures) > 0 {
				Fail(fmt.Sprintf("seed %d (rerun: LABCTL_SEEDS=%d): %d walks failed\n%s\n--- topology ---\n%s",
					seed, seed, len(failures), strings.Join(failures, "\n"), yaml))
			}
		})
	}
})
