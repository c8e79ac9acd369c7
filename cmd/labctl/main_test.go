package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab"
)

func TestVersionNamesTheCommitSetAtBuild(t *testing.T) {
	old := commit
	defer func() { commit = old }()
	commit = "0123abc"
	if v := version(); !strings.Contains(v, "commit 0123abc") {
		t.Errorf("version() = %q, want the commit", v)
	}
}

func TestHintsNameTheBinaryAsInvoked(t *testing.T) {
	old := os.Args
	defer func() { os.Args = old }()
	os.Args = []string{"bin/labctl", "up"}
	if got := self(); got != "bin/labctl" {
		t.Errorf("self() = %q, want bin/labctl", got)
	}
}

func TestALabNamedButNotUpIsRefusedWithTheLabsThatAre(t *testing.T) {
	err := notUp("nope", "--lab")
	if !errors.Is(err, lab.ErrNotUp) || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "labs up:") &&
		!strings.Contains(err.Error(), "no lab is up") {
		t.Errorf("notUp = %v", err)
	}
}
