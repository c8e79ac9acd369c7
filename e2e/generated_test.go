package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
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
// returns the failures, each with its first mismatch and report.
func runSeed(seed int64) (failures []string, yaml []byte) {
	GinkgoHelper()
	yaml = spec.Random(seed)
	dir, err := os.MkdirTemp("", "labctl-gen-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	Expect(os.Chmod(dir, 0o755)).To(Succeed())
	file := filepath.Join(dir, fmt.Sprintf("seed-%d.yaml", seed))
	Expect(os.WriteFile(file, yaml, 0o644)).To(Succeed())
	t, err := spec.Load(file)
	Expect(err).NotTo(HaveOccurred(), "seed %d does not load:\n%s", seed, yaml)
	name := fmt.Sprintf("%sg%d", labPrefix, seed%1_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = lab.Up(ctx, t, lab.UpOptions{Name: name})
	Expect(err).NotTo(HaveOccurred(), "seed %d: up:\n%s", seed, yaml)
	DeferCleanup(func() {
		_, err := lab.Down(name)
		Expect(err).NotTo(HaveOccurred())
		expectNothingLeft(name)
	})
	s, err := lab.OpenSession(name)
	Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	walks := append([]spec.Walk(nil), t.Walks...)
	// A churn walk replaces a pod; the others run on the lab as written.
	sort.SliceStable(walks, func(i, j int) bool { return walks[i].Kind != spec.WalkChurn && walks[j].Kind == spec.WalkChurn })
	for _, w := range walks {
		if w.Kind == spec.WalkState {
			continue // the state check is not one of Session.Walk's kinds
		}
		run, err := s.Walk(w, filepath.Join(dir, w.Name))
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("walk %s: %v", w.Name, err))
		case !run.Passed() && run.Report != nil:
			first := "none"
			if h := run.Report.FirstFailure(); h != nil {
				first = h.Describe()
			}
			failures = append(failures, fmt.Sprintf("walk %s FAILED; first mismatch: %s\n%s", w.Name, first, describe(run.Report)))
		case !run.Passed():
			failures = append(failures, fmt.Sprintf("walk %s FAILED: %+v %+v", w.Name, run.Spread, run.Churn))
		}
	}
	return failures, yaml
}

var _ = Describe("generated topologies", Label("generated"), func() {
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
