package state

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCurrentLabIsKeptPerUserAndForgotten(t *testing.T) {
	Root = t.TempDir()
	if got, err := Current(1000); got != "" || err != nil {
		t.Fatalf("before use: %q, %v", got, err)
	}
	if err := SetCurrent(1000, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := SetCurrent(1001, "bob"); err != nil {
		t.Fatal(err)
	}
	if got, _ := Current(1000); got != "alice" {
		t.Errorf("uid 1000: %q, want alice", got)
	}
	if got, _ := Current(1001); got != "bob" {
		t.Errorf("uid 1001: %q, want bob", got)
	}
	if labs, _ := Labs(); len(labs) != 0 {
		t.Errorf("the current-lab files show up as labs: %v", labs)
	}
	if err := SetCurrent(1000, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := Current(1000); got != "" {
		t.Errorf("after forgetting: %q", got)
	}
}

func TestCurrentLabRejectsABadName(t *testing.T) {
	Root = t.TempDir()
	if err := SetCurrent(0, "../etc"); err == nil {
		t.Error("SetCurrent accepted ../etc")
	}
	os.MkdirAll(filepath.Join(Root, ".current"), 0o700)
	os.WriteFile(filepath.Join(Root, ".current", "0"), []byte("a/b\n"), 0o600)
	if _, err := Current(0); err == nil {
		t.Error("Current accepted a planted a/b")
	}
}
