package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// The current lab (labctl use) is kept per invoking user under Root, as
// .current/<uid>: root's own tmpfs directory, like the labs themselves, so
// it goes with them at reboot, no one else can plant a link there, and two
// people on one training machine each keep their own.
func currentPath(uid int) string {
	return filepath.Join(Root, ".current", strconv.Itoa(uid))
}

// SetCurrent makes lab the user's current lab; "" forgets it.
func SetCurrent(uid int, lab string) error {
	if lab == "" {
		err := os.Remove(currentPath(uid))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := spec.ValidateLabName(lab); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(Root, ".current"), 0o700); err != nil {
		return fmt.Errorf("saving the current lab: %w", err)
	}
	return WriteFileAtomic(currentPath(uid), []byte(lab+"\n"), 0o600)
}

// Current is the user's current lab, or "" if none was set.
func Current(uid int) (string, error) {
	b, err := os.ReadFile(currentPath(uid))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	lab := strings.TrimSpace(string(b))
	if err := spec.ValidateLabName(lab); err != nil {
		return "", fmt.Errorf("%s: %w", currentPath(uid), err)
	}
	return lab, nil
}
