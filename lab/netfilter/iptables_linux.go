//go:build linux

package netfilter

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// Iptables is a kernel backend run through the iptables programs: "nft"
// (iptables-nft, what EKS's AL2023 nodes run, and what walk --explain's
// TRACE needs) or "legacy" (iptables-legacy, what EKS's AL2 nodes run, and
// much faster to restore).
type Iptables struct {
	name                string
	RestoreCmd, SaveCmd string
	Cmd                 string
}

// For is a backend by the topology's name for it; empty is nft, the default.
func For(backend string) *Iptables {
	if backend == spec.IptablesLegacy {
		return &Iptables{spec.IptablesLegacy, "iptables-legacy-restore", "iptables-legacy-save", "iptables-legacy"}
	}
	return &Iptables{spec.IptablesNFT, "iptables-nft-restore", "iptables-nft-save", "iptables-nft"}
}

// Of is the backend of the lab a namespace belongs to, as its state
// records it (state is written before any namespace exists). Reading the
// small file costs little next to the process it picks.
func Of(n Namespace) *Iptables {
	lab, _, _ := strings.Cut(strings.TrimPrefix(n.String(), spec.NSPrefix), ".")
	backend := ""
	if st, err := state.Read(lab); err == nil {
		backend = st.Iptables
	}
	return For(backend)
}

func (b *Iptables) Name() string    { return b.name }
func (b *Iptables) Tools() []string { return []string{b.RestoreCmd, b.SaveCmd} }

// Restore runs the restore program inside the namespace with the payload on
// its standard input: one transaction, waiting for the xtables lock (-w).
func (b *Iptables) Restore(n Namespace, payload string, noflush bool) error {
	args := []string{"-w"}
	if noflush {
		args = append(args, "--noflush")
	}
	var stderr bytes.Buffer
	err := n.Do(func() error {
		cmd := exec.Command(b.RestoreCmd, args...)
		cmd.Stdin = strings.NewReader(payload)
		cmd.Stderr = &stderr
		return cmd.Run()
	})
	if err != nil {
		return fmt.Errorf("iptables-restore in %s: %w: %s%s", n, err, strings.TrimSpace(stderr.String()),
			OffendingLine(stderr.String(), payload))
	}
	return nil
}

// Save runs the save program in the namespace. One call for every table
// costs less than one per table: a process is ~2 ms.
func (b *Iptables) Save(n Namespace, counters bool, tables ...string) (string, error) {
	var args []string
	if counters {
		args = append(args, "-c")
	}
	var out bytes.Buffer
	run := func(extra ...string) error {
		cmd := exec.Command(b.SaveCmd, append(args, extra...)...)
		cmd.Stdout = &out
		return cmd.Run()
	}
	err := n.Do(func() error {
		if len(tables) == 0 {
			return run()
		}
		for _, t := range tables {
			if err := run("-t", t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s in %s: %w", b.SaveCmd, n, err)
	}
	return out.String(), nil
}
