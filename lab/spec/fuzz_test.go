package spec

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to topology parsing and validation,
// seeded with every shipped topology: no input may panic or hang, and an
// accepted topology must validate again unchanged.
//
//	go test -run='^$' -fuzz=FuzzParse -fuzztime=30s ./lab/spec
func FuzzParse(f *testing.F) {
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
	f.Add([]byte(hardLab + hardDeploy))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse("fuzz.yaml", "fuzz", data)
		if err != nil {
			return
		}
		if errs := top.Validate(); len(errs) > 0 {
			t.Fatalf("Parse accepted a topology that Validate then rejects: %v", errs)
		}
	})
}
