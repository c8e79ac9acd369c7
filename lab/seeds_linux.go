//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/labctl/labctl/lab/spec"
)

// SeedResult is one generated topology's run: how many walks it derived
// and ran, and each failure with its first mismatch.
type SeedResult struct {
	Seed     int64
	Walks    int
	Failures []string
	// YAML is the generated topology, so a failure reproduces as a file.
	YAML []byte
}

// RunSeed generates the topology of seed (spec.Random), brings it up as
// lab name, runs every walk derived for it (the churn walk last, since it
// replaces a pod) with captures under dir, and takes the lab down again.
// A verdict is only as good as the topologies it was tried on: users bring
// their own cluster's plan, so seeds stand in for plans we have not seen.
func RunSeed(ctx context.Context, seed int64, name, dir string) (res *SeedResult, err error) {
	res = &SeedResult{Seed: seed, YAML: spec.Random(seed)}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	file := filepath.Join(dir, fmt.Sprintf("seed-%d.yaml", seed))
	if err := os.WriteFile(file, res.YAML, 0o644); err != nil {
		return res, err
	}
	t, err := spec.Load(file)
	if err != nil {
		return res, fmt.Errorf("seed %d does not load: %w", seed, err)
	}
	l, err := Start(ctx, t, UpOptions{Name: name})
	if err != nil {
		return res, fmt.Errorf("seed %d: up: %w", seed, err)
	}
	defer func() {
		if _, derr := l.Down(); derr != nil && err == nil {
			err = fmt.Errorf("seed %d: down: %w", seed, derr)
		}
	}()
	walks := append([]spec.Walk(nil), t.Walks...)
	sort.SliceStable(walks, func(i, j int) bool { return walks[i].Kind != spec.WalkChurn && walks[j].Kind == spec.WalkChurn })
	for _, w := range walks {
		res.Walks++
		if w.Kind == spec.WalkState {
			rep, err := l.s.State()
			switch {
			case err != nil:
				res.Failures = append(res.Failures, fmt.Sprintf("walk %s: %v", w.Name, err))
			case !rep.Passed():
				res.Failures = append(res.Failures, fmt.Sprintf("walk %s FAILED: %+v", w.Name, rep))
			}
			continue
		}
		run, err := l.s.Walk(w, filepath.Join(dir, w.Name))
		switch {
		case err != nil:
			res.Failures = append(res.Failures, fmt.Sprintf("walk %s: %v", w.Name, err))
		case !run.Passed() && run.Report != nil:
			first := "none (see the notes)"
			if h := run.Report.FirstFailure(); h != nil {
				first = h.Describe()
			}
			res.Failures = append(res.Failures, fmt.Sprintf("walk %s FAILED; first mismatch: %s; notes: %v", w.Name, first, run.Report.Notes))
		case !run.Passed() && run.Spread != nil:
			res.Failures = append(res.Failures, fmt.Sprintf("walk %s FAILED: %+v", w.Name, run.Spread))
		case !run.Passed() && run.Churn != nil:
			res.Failures = append(res.Failures, fmt.Sprintf("walk %s FAILED: %s", w.Name, run.Churn.Why()))
		}
	}
	return res, nil
}
