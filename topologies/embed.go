// Package topologies holds the topologies labctl can build, embedded in the
// binary so a bare name such as "pod-networking" works from any directory.
package topologies

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

//go:embed *.yaml
var files embed.FS

// Names lists the embedded topologies, sorted.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Load parses the embedded topology of that name. Errors name it as
// topologies/<name>.yaml, the file it was built from.
func Load(name string) (*spec.Topology, error) {
	t, _, err := LoadWithSource(name)
	return t, err
}

// LoadWithSource is Load that also returns the file's bytes, which a lab
// saves as its own copy of the topology.
func LoadWithSource(name string) (*spec.Topology, []byte, error) {
	data, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, nil, fmt.Errorf("no topology %q built into labctl (it has: %s); give a file as a path, e.g. ./%s.yaml",
			name, strings.Join(Names(), ", "), name)
	}
	t, err := spec.Parse(File(name), name, data)
	return t, data, err
}

// File is how errors and a lab's state name a built-in topology.
func File(name string) string { return "labctl:topologies/" + name + ".yaml" }

// WalkNames are the topology's walks in file order.
func WalkNames(t *spec.Topology) []string {
	out := make([]string, 0, len(t.Walks))
	for _, w := range t.Walks {
		out = append(out, w.Name)
	}
	return out
}

// MarkdownTable is the README's topology table, generated from the
// embedded topologies so it lists every topology and walk.
func MarkdownTable() (string, error) {
	var b strings.Builder
	b.WriteString("| topology | walks | what it shows |\n|---|---|---|\n")
	for _, n := range Names() {
		t, err := Load(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", n, strings.Join(WalkNames(t), ", "), t.Description)
	}
	return b.String(), nil
}
