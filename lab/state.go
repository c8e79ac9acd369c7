// Package lab builds, inspects and removes labs: the orchestration over spec
// (what to build), plan (the kernel state it renders to), ns (namespaces),
// capture and walk.
package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/labctl/labctl/lab/spec"
)

// StateRoot holds one directory per lab. It is on tmpfs, like /run/netns, so
// a reboot forgets labs and their namespaces together.
var StateRoot = "/run/labctl"

// State is what a lab records about itself. It is written before anything
// is created, so `down` knows the lab even if `up` is killed half-way.
type State struct {
	Lab      string    `json:"lab"`
	Topology string    `json:"topology"` // absolute path of the source file
	Created  time.Time `json:"created"`
	// Iptables is the lab's iptables backend (nft or legacy).
	Iptables string `json:"iptables,omitempty"`
	// Namespaces are the kernel names the lab will create (or created).
	Namespaces []string `json:"namespaces"`
	// Complete is set when up finished; a lab without it was interrupted.
	Complete bool `json:"complete"`
	// AgentPID is the app server process of the lab, once started.
	AgentPID int `json:"agentPID,omitempty"`
	// CreatedEtcNetns records that up created /etc/netns, for down to remove.
	CreatedEtcNetns bool `json:"createdEtcNetns,omitempty"`
	// Churn is every pod deleted and started since up.
	Churn spec.Churn `json:"churn"`
}

// Dir is the lab's state directory.
func Dir(lab string) string { return filepath.Join(StateRoot, lab) }

func statePath(lab string) string { return filepath.Join(Dir(lab), "state.json") }

// TopologyCopy is the lab's own copy of its topology, so walks and status
// work without the original file.
func TopologyCopy(lab string) string { return filepath.Join(Dir(lab), "topology.yaml") }

// ReadState loads a lab's state.
func ReadState(lab string) (*State, error) {
	b, err := os.ReadFile(statePath(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %q is not up (no %s)", lab, statePath(lab))
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", statePath(lab), err)
	}
	return &s, nil
}

// write replaces the state file atomically, so a crash never leaves half a file.
func (s *State) write() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(s.Lab) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(s.Lab))
}

// Labs lists the labs that have state, sorted.
func Labs() ([]string, error) {
	ents, err := os.ReadDir(StateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
