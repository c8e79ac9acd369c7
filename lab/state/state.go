// Package state is a lab's record of itself on disk: the state directory,
// state.json, the lab's copy of its topology, the lock that serialises the
// commands that change a lab, and the paths of every file a lab keeps.
// Nothing here touches the kernel, so it is unit-tested without root.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/labctl/labctl/lab/spec"
)

// Root holds one directory per lab. It is on tmpfs, like /run/netns, so a
// reboot forgets labs and their namespaces together. Tests point it at a
// temporary directory.
var Root = "/run/labctl"

// ErrNotUp: the named lab has no state (never built, or already down).
var ErrNotUp = errors.New("not up")

// ErrNoLab: no lab is up, so none can be picked by default.
var ErrNoLab = errors.New("no lab is up")

// ErrIncomplete: the lab's up was interrupted; only down may act on it.
var ErrIncomplete = errors.New("not completely built (up was interrupted)")

// State is what a lab records about itself. It is written before anything
// is created, so `down` knows the lab even if `up` is killed half-way.
type State struct {
	Lab      string    `json:"lab"`
	Topology string    `json:"topology"` // absolute path of the source file
	Created  time.Time `json:"created"`
	// Iptables is the lab's iptables backend (nft or legacy).
	Iptables string `json:"iptables,omitempty"`
	// KubeProxyMode is the nodes' kube-proxy mode (iptables or nftables).
	KubeProxyMode string `json:"kubeProxyMode,omitempty"`
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
func Dir(lab string) string { return filepath.Join(Root, lab) }

// The files a lab keeps in its directory.
const (
	stateFile    = "state.json"
	topologyFile = "topology.yaml"
	agentLog     = "agent.log"
	agentSock    = "agent.sock"
	healthFile   = "lb-health.json"
	faultsFile   = "faults.json"
	exerciseFile = "exercise.json"
	lockFile     = "lock"
)

// Path is a file of the lab's directory.
func Path(lab, file string) string { return filepath.Join(Dir(lab), file) }

func statePath(lab string) string { return Path(lab, stateFile) }

// TopologyCopy is the lab's own copy of its topology, so walks and status
// work without the original file.
func TopologyCopy(lab string) string { return Path(lab, topologyFile) }

// AgentLog is where the lab's app server writes.
func AgentLog(lab string) string { return Path(lab, agentLog) }

// AgentSocket is where the app server takes commands.
func AgentSocket(lab string) string { return Path(lab, agentSock) }

// HealthFile is where the app server records target health for labctl lb
// and the walks.
func HealthFile(lab string) string { return Path(lab, healthFile) }

// FaultsFile records the faults injected into a lab, so clear can undo them.
func FaultsFile(lab string) string { return Path(lab, faultsFile) }

// ExerciseFile marks a lab started as an exercise (its ticket and fault).
func ExerciseFile(lab string) string { return Path(lab, exerciseFile) }

// Read loads a lab's state.
func Read(lab string) (*State, error) {
	b, err := os.ReadFile(statePath(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %q is %w (no %s)", lab, ErrNotUp, statePath(lab))
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

// Write replaces the state file atomically, so a crash never leaves half a file.
func (s *State) Write() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(statePath(s.Lab), b, 0o600)
}

// Absent: the lab has no state file at all (a crash before up wrote it).
// Any other failure to see it is not absence.
func Absent(lab string) bool {
	_, err := os.Stat(statePath(lab))
	return errors.Is(err, fs.ErrNotExist)
}

// Labs lists the labs that have state, sorted.
func Labs() ([]string, error) {
	ents, err := os.ReadDir(Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") { // "." : an up still making its state
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Resolve picks the lab to act on: the one named, or the only one up.
func Resolve(name string) (string, error) {
	if name != "" {
		return name, spec.ValidateLabName(name)
	}
	labs, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", fmt.Errorf("%w: labctl up <topology> first", ErrNoLab)
	case 1:
		return labs[0], nil
	}
	return "", fmt.Errorf("%d labs are up (%s): say which with --lab", len(labs), strings.Join(labs, ", "))
}

// Load reads the topology a lab was built from (its own copy), with the
// pods deleted and started since up applied.
func Load(lab string) (*spec.Topology, *State, error) {
	t, st, err := LoadRaw(lab)
	if err != nil {
		return nil, nil, err
	}
	t.ApplyChurn(st.Churn)
	return t, st, nil
}

// LoadRaw is the lab's topology as written, before any pod churn.
func LoadRaw(lab string) (*spec.Topology, *State, error) {
	st, err := Read(lab)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(TopologyCopy(lab))
	if err != nil {
		return nil, nil, fmt.Errorf("lab %s: %w", lab, err)
	}
	t, err := spec.Parse(st.Topology, lab, b)
	if err != nil {
		return nil, nil, err
	}
	return t, st, nil
}
