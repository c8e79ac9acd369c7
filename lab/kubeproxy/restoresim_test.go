package kubeproxy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// kernelModel is a minimal model of iptables state, enough to replay
// `iptables-restore --noflush` payloads: a ":CHAIN" line creates or flushes
// a chain, "-A" appends (the chain must exist, and so must a non-builtin
// jump target), "-X" deletes an existing, unreferenced chain, and each
// table block is atomic. It catches payloads that a real restore rejects,
// such as a partial sync jumping to a chain it never created.
type kernelModel struct {
	tables map[string]map[string][]string // table -> chain -> rules
}

var builtinChains = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
}

func newKernelModel() *kernelModel {
	k := &kernelModel{tables: map[string]map[string][]string{}}
	for t, chains := range builtinChains {
		k.tables[t] = map[string][]string{}
		for _, c := range chains {
			k.tables[t][c] = nil
		}
	}
	return k
}

var targetRe = regexp.MustCompile(` -j ([^ ]+)`)

func isTargetExtension(s string) bool {
	return s == strings.ToUpper(s) && !strings.Contains(s, "-")
}

// restore applies payload with --noflush semantics.
func (k *kernelModel) restore(payload string) error {
	var table string
	var work map[string][]string
	for n, line := range strings.Split(payload, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			if k.tables[table] == nil {
				return fmt.Errorf("line %d: unknown table %q", n+1, table)
			}
			work = maps.Clone(k.tables[table])
		case line == "COMMIT":
			if work == nil {
				return fmt.Errorf("line %d: COMMIT outside a table", n+1)
			}
			k.tables[table], work = work, nil
		case work == nil:
			return fmt.Errorf("line %d: %q outside a table", n+1, line)
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			work[name] = nil
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			if _, ok := work[chain]; !ok {
				return fmt.Errorf("line %d: %s: no chain %q", n+1, table, chain)
			}
			if m := targetRe.FindStringSubmatch(line); m != nil && !isTargetExtension(m[1]) {
				if _, ok := work[m[1]]; !ok {
					return fmt.Errorf("line %d: %s: jump to missing chain %q", n+1, table, m[1])
				}
			}
			work[chain] = append(work[chain], line)
		case strings.HasPrefix(line, "-X "):
			name := line[3:]
			rules, ok := work[name]
			if !ok || len(rules) > 0 {
				return fmt.Errorf("line %d: %s: cannot delete %q (missing or not empty)", n+1, table, name)
			}
			for c, rs := range work {
				for _, r := range rs {
					if m := targetRe.FindStringSubmatch(r); m != nil && m[1] == name {
						return fmt.Errorf("line %d: %s: %q still referenced from %s", n+1, table, name, c)
					}
				}
			}
			delete(work, name)
		default:
			return fmt.Errorf("line %d: cannot parse %q", n+1, line)
		}
	}
	if work != nil {
		return fmt.Errorf("table %q has no COMMIT", table)
	}
	return nil
}

// ruleCount counts the rules of a table.
func (k *kernelModel) ruleCount(table string) int {
	n := 0
	for _, rs := range k.tables[table] {
		n += len(rs)
	}
	return n
}

// danglingJumps lists jumps to chains that exist but are empty (traffic
// would fall through) or to chains that do not exist.
func (k *kernelModel) danglingJumps(table string) []string {
	var out []string
	for c, rs := range k.tables[table] {
		for _, r := range rs {
			m := targetRe.FindStringSubmatch(r)
			if m == nil || isTargetExtension(m[1]) || m[1] == "KUBE-NODEPORTS" {
				continue
			}
			if rules, ok := k.tables[table][m[1]]; !ok || len(rules) == 0 {
				out = append(out, c+" -> "+m[1])
			}
		}
	}
	slices.Sort(out)
	return out
}

// chains lists a table's chains.
func (k *kernelModel) chains(table string) []string {
	return slices.Sorted(maps.Keys(k.tables[table]))
}
