//go:build linux

package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// SeedResult is one generated topology's run: how many walks it derived
// and ran, and each failure with its first mismatch.
type SeedResult struct {
	Seed     int64
	Walks    int
	Failures []string
	// YAML is the generated topology, so a failure reproduces as a file.
	YAML []byte
	// Faults are the fault classes injected, "class on walk".
	Faults []string
}

// RunSeed generates the topology of seed (spec.Random), brings it up as
// lab name, runs every walk derived for it (the churn walk last, since it
// replaces a pod) with captures under dir, and takes the lab down again.
// A verdict is only as good as the topologies it was tried on: users bring
// their own cluster's plan, so seeds stand in for plans we have not seen.
func RunSeed(ctx context.Context, seed int64, name, dir string) (res *SeedResult, err error) {
	res = &SeedResult{Seed: seed, YAML: spec.Random(seed)}
	// dir may be the caller's: never written through a planted name.
	f, err := state.CreateIn(dir, fmt.Sprintf("seed-%d.yaml", seed), 0o644)
	if err != nil {
		return res, err
	}
	_, err = f.Write(res.YAML)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	file := f.Name()
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
	faultsDone := false
	for _, w := range walks {
		if w.Kind == spec.WalkChurn && !faultsDone {
			res.faultClasses(l, walks, dir)
			faultsDone = true
		}
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
	if !faultsDone {
		res.faultClasses(l, walks, dir)
	}
	return res, nil
}

// faultClasses breaks the lab once per fault class, on the first walk the
// class applies to: the walk must fail, first at the class's own hop, and
// pass again once the fault is cleared.
func (res *SeedResult) faultClasses(l *Lab, walks []spec.Walk, dir string) {
	for _, c := range fault.Classes {
		for _, w := range walks {
			want, ok := c.Target(l.s.Topo, w)
			if !ok {
				continue
			}
			res.Faults = append(res.Faults, c.Name+" on "+w.Name)
			fail := func(format string, a ...any) {
				res.Failures = append(res.Failures, fmt.Sprintf("fault %s on walk %s: ", c.Name, w.Name)+fmt.Sprintf(format, a...))
			}
			if err := c.Inject(l.s, w); err != nil {
				fail("inject: %v", err)
				break
			}
			run, err := l.s.Walk(w, filepath.Join(dir, "fault-"+c.Name))
			switch {
			case err != nil:
				fail("%v", err)
			case run.Report == nil || run.Passed():
				fail("the walk passed with the fault in")
			case run.Report.FirstFailure() == nil:
				fail("the walk failed with every hop matching (%v), not at %s", run.Report.Notes, want)
			case run.Report.FirstFailure().Point.Object != want:
				fail("first failed at %s, want %s", run.Report.FirstFailure().Describe(), want)
			}
			if err := c.Clear(l.s, w); err != nil {
				fail("clear: %v", err)
				break
			}
			if run, err := l.s.Walk(w, filepath.Join(dir, "fault-"+c.Name+"-cleared")); err != nil || !run.Passed() {
				fail("the walk does not pass again once cleared (%v)", err)
			}
			break
		}
	}
}
