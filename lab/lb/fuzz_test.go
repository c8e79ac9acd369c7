package lb

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// FuzzBuild parses arbitrary topologies, seeded with the shipped ones, and
// builds the load balancers of every one that validates, as labctl
// validate does: no accepted topology may panic or hang the build.
//
//	go test -run='^$' -fuzz=FuzzBuild -fuzztime=30s ./lab/lb
func FuzzBuild(f *testing.F) {
	files, _ := filepath.Glob("../../topologies/*.yaml")
	if len(files) == 0 {
		f.Fatal("no shipped topologies to seed the corpus with")
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := spec.Parse("fuzz.yaml", "fuzz", data)
		if err != nil {
			return
		}
		m, err := Build(top)
		if err != nil {
			return
		}
		for _, l := range m.LBs {
			for _, w := range top.Walks {
				_, _ = l.NodeInAZ(w.AZ)
			}
		}
	})
}
