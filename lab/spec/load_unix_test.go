//go:build unix

package spec

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadWithin runs Load and fails the test if it does not return in time,
// so a hang is a failure rather than a stuck test binary.
func loadWithin(t *testing.T, path string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := Load(path); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("Load(%s) did not return within 10 s", path)
		return nil
	}
}

func TestLoadRefusesDevicesAndFIFOsWithoutReadingOrBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "topo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/zero", fifo} {
		err := loadWithin(t, p)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%s) = %v, want a 'not a regular file' error naming it", p, err)
		}
	}
}

func TestLoadRefusesFilesLargerThanTheLimit(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	if err := loadWithin(t, big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a %d-byte file = %v, want a 'larger than' error", MaxFileSize+1, err)
	}
	if _, err := Parse("x.yaml", "x", make([]byte, MaxFileSize+1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Parse of %d bytes = %v, want a 'larger than' error", MaxFileSize+1, err)
	}
}

func TestLoadFollowsASymlinkToARegularFile(t *testing.T) {
	link := filepath.Join(t.TempDir(), "pn.yaml")
	target, _ := filepath.Abs("../../topologies/pod-networking.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := loadWithin(t, link); err != nil {
		t.Errorf("a symlink to a shipped topology: %v", err)
	}
}
