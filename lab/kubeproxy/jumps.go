package kubeproxy

import (
	"bytes"
	"fmt"
	"strings"
)

// JumpRule is one hook from a built-in chain into kube-proxy's chains
// (iptablesJumpChains and iptablesKubeletJumpChains upstream). These rules
// are not in the sync payload: kube-proxy ensures each one with
// `iptables -C` / `iptables -I <src> 1` on every full sync, because a
// restore must not own PREROUTING and the other built-in chains.
type JumpRule struct {
	Table    Table
	DstChain Chain
	SrcChain Chain
	// Comment is empty for the kubelet duplicates.
	Comment   string
	ExtraArgs []string
}

// JumpRules returns the jump rules in kube-proxy's order. Each is prepended,
// so a built-in chain ends up holding them in reverse order.
func JumpRules() []JumpRule {
	ctNew := []string{"-m", "conntrack", "--ctstate", "NEW"}
	const (
		external  = "kubernetes externally-visible service portals"
		health    = "kubernetes health check service ports"
		portals   = "kubernetes service portals"
		forward   = "kubernetes forwarding rules"
		firewall  = "kubernetes load balancer firewall"
		postroute = "kubernetes postrouting rules"
	)
	return []JumpRule{
		{TableFilter, ChainExternalServices, "INPUT", external, ctNew},
		{TableFilter, ChainExternalServices, "FORWARD", external, ctNew},
		{TableFilter, ChainNodePorts, "INPUT", health, nil},
		{TableFilter, ChainServices, "FORWARD", portals, ctNew},
		{TableFilter, ChainServices, "OUTPUT", portals, ctNew},
		{TableFilter, ChainForward, "FORWARD", forward, nil},
		{TableFilter, ChainProxyFirewall, "INPUT", firewall, ctNew},
		{TableFilter, ChainProxyFirewall, "OUTPUT", firewall, ctNew},
		{TableFilter, ChainProxyFirewall, "FORWARD", firewall, ctNew},
		{TableNAT, ChainServices, "OUTPUT", portals, nil},
		{TableNAT, ChainServices, "PREROUTING", portals, nil},
		{TableNAT, ChainPostrouting, "POSTROUTING", postroute, nil},
		// iptablesKubeletJumpChains: kubelet creates the same chain and jumps.
		{TableFilter, ChainKubeletFirewall, "INPUT", "", nil},
		{TableFilter, ChainKubeletFirewall, "OUTPUT", "", nil},
	}
}

// Args are the rule arguments after the chain, unquoted, as passed to
// `iptables -C/-I <src>` (what EnsureRule receives).
func (j JumpRule) Args() []string {
	args := append([]string(nil), j.ExtraArgs...)
	if j.Comment != "" {
		args = append(args, "-m", "comment", "--comment", j.Comment)
	}
	return append(args, "-j", string(j.DstChain))
}

// restoreLine is the rule in restore form: "-A <src> ..." with the comment
// quoted.
func (j JumpRule) restoreLine() string {
	args := j.Args()
	for i, a := range args {
		if i > 0 && args[i-1] == "--comment" {
			args[i] = `"` + a + `"`
		}
	}
	return "-A " + string(j.SrcChain) + " " + strings.Join(args, " ")
}

// builtinOrder is the order iptables-save lists a table's built-in chains.
func builtinOrder(t Table) []Chain {
	if t == TableNAT {
		return []Chain{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}
	}
	return []Chain{"INPUT", "FORWARD", "OUTPUT"}
}

// JumpRestoreLines returns table's jump rules as "-A" restore lines, in the
// order that leaves each built-in chain exactly as kube-proxy's prepends
// leave it on a fresh node (grouped by built-in chain, newest first). That
// is also the order `iptables-save` prints them.
func JumpRestoreLines(table Table) []string {
	rules := JumpRules()
	var lines []string
	for _, src := range builtinOrder(table) {
		for i := len(rules) - 1; i >= 0; i-- {
			if rules[i].Table == table && rules[i].SrcChain == src {
				lines = append(lines, rules[i].restoreLine())
			}
		}
	}
	return lines
}

// EnsureJumps is kube-proxy's EnsureRule(Prepend) for every jump rule that
// save (iptables-save of the filter and nat tables) lacks: a restore payload
// for --noflush that inserts each at the head of its built-in chain, or ""
// when none is missing. kube-proxy ensures them on every full sync, so a
// jump someone deleted comes back.
func EnsureJumps(save []byte) string {
	have := map[Table]map[string]bool{}
	var table Table
	for _, line := range strings.Split(string(save), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = Table(line[1:])
			have[table] = map[string]bool{}
		case strings.HasPrefix(line, "-A ") && table != "":
			have[table][line] = true
		}
	}
	var out strings.Builder
	for _, table := range []Table{TableFilter, TableNAT} {
		var missing []string
		for _, j := range JumpRules() {
			if j.Table == table && !have[table][j.restoreLine()] {
				missing = append(missing, "-I "+string(j.SrcChain)+" 1"+strings.TrimPrefix(j.restoreLine(), "-A "+string(j.SrcChain)))
			}
		}
		if len(missing) > 0 {
			out.WriteString("*" + string(table) + "\n" + strings.Join(missing, "\n") + "\nCOMMIT\n")
		}
	}
	return out.String()
}

// InitialRestore turns a full-sync payload (from Render, or a full
// Proxier.Sync) into the one-time restore for a fresh network namespace: it
// adds the canary chains KUBE-PROXY-CANARY in mangle, nat and filter, the
// KUBE-FIREWALL declaration when the payload lacks it (kube-proxy's
// EnsureChain), and the jump rules before each table's COMMIT. Apply it with
// --noflush once; built-in chains must not already hold the jumps.
func InitialRestore(payload []byte) ([]byte, error) {
	var out bytes.Buffer
	out.WriteString("*mangle\n:" + string(ChainProxyCanary) + " - [0:0]\nCOMMIT\n")
	var table Table
	declared := map[Chain]bool{}
	inDecls := false
	for _, line := range strings.SplitAfter(string(payload), "\n") {
		trimmed := strings.TrimRight(line, "\n")
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "*"):
			table, inDecls = Table(trimmed[1:]), true
			clear(declared)
			out.WriteString(line)
			out.WriteString(":" + string(ChainProxyCanary) + " - [0:0]\n")
			continue
		case strings.HasPrefix(trimmed, ":"):
			name, _, _ := strings.Cut(trimmed[1:], " ")
			declared[Chain(name)] = true
		case inDecls && table != "":
			// First line after the declarations: add the missing ones.
			inDecls = false
			for _, j := range JumpRules() {
				if j.Table == table && !declared[j.DstChain] {
					declared[j.DstChain] = true
					out.WriteString(":" + string(j.DstChain) + " - [0:0]\n")
				}
			}
		}
		if trimmed == "COMMIT" {
			if table == "" {
				return nil, fmt.Errorf("COMMIT outside a table in payload")
			}
			for _, l := range JumpRestoreLines(table) {
				out.WriteString(l + "\n")
			}
			table = ""
		}
		out.WriteString(line)
	}
	if table != "" {
		return nil, fmt.Errorf("payload table %q has no COMMIT", table)
	}
	return out.Bytes(), nil
}
