package topologies

import (
	"os"
	"strings"
	"testing"
)

func TestEveryEmbeddedTopologyParsesAndHasWalks(t *testing.T) {
	names := Names()
	if len(names) < 10 {
		t.Fatalf("only %d embedded topologies: %v", len(names), names)
	}
	for _, n := range names {
		tp, err := Load(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if len(tp.Walks) == 0 || tp.Description == "" {
			t.Errorf("%s: %d walks, description %q", n, len(tp.Walks), tp.Description)
		}
	}
}

func TestLoadOfUnknownNameListsTheEmbeddedOnes(t *testing.T) {
	_, err := Load("nope")
	if err == nil || !strings.Contains(err.Error(), "pod-networking") {
		t.Fatalf("err = %v, want one listing pod-networking", err)
	}
}

// The README's table is checked against the embedded topologies, so a new
// topology or walk cannot be left out of it. Regenerate it with
// UPDATE_README=1 go test ./topologies.
func TestREADMETopologyTableMatchesEmbeddedTopologies(t *testing.T) {
	want, err := MarkdownTable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	const head = "| topology | walks | what it shows |\n"
	i := strings.Index(readme, head)
	if i < 0 {
		t.Fatalf("README.md has no line %q", head)
	}
	end := strings.Index(readme[i:], "\n\n")
	if end < 0 {
		t.Fatal("README.md: the topology table does not end with a blank line")
	}
	got := readme[i : i+end+1]
	if got == want {
		return
	}
	if os.Getenv("UPDATE_README") == "1" {
		if err := os.WriteFile("../README.md", []byte(readme[:i]+want+readme[i+end+1:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's topology table is stale; run UPDATE_README=1 go test ./topologies\ngot:\n%s\nwant:\n%s", got, want)
}
