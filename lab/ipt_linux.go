//go:build linux

package lab

import (
	"strings"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
)

// Iptables names the programs of one iptables backend.
type Iptables struct{ Restore, Save, Cmd string }

// IptablesFor is a backend's programs: "nft" (iptables-nft, what EKS's AL2023
// nodes run, and what walk --explain's TRACE needs) or "legacy"
// (iptables-legacy, what EKS's AL2 nodes run, and much faster to restore).
func IptablesFor(backend string) Iptables {
	if backend == spec.IptablesLegacy {
		return Iptables{"iptables-legacy-restore", "iptables-legacy-save", "iptables-legacy"}
	}
	return Iptables{"iptables-nft-restore", "iptables-nft-save", "iptables-nft"}
}

// iptablesOf is the backend of the lab a namespace belongs to, as its state
// records it (state is written before any namespace exists). Reading the
// small file costs little next to the iptables process it picks.
func iptablesOf(n *ns.NS) Iptables {
	lab, _, _ := strings.Cut(strings.TrimPrefix(n.Name, spec.NSPrefix), ".")
	backend := ""
	if st, err := ReadState(lab); err == nil {
		backend = st.Iptables
	}
	return IptablesFor(backend)
}
