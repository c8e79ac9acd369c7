package kubeproxy

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// This file re-implements, for tests, how upstream compares a restore
// payload with a golden dump (kube-proxy.md §6): iptablestest
// ParseIPTablesDump + sortIPTablesRules + IPTablesDump.String, and
// checkIPTablesRuleJumps.

type dumpRule struct {
	raw     string
	comment *string
}

type dumpChain struct {
	name    string
	rules   []dumpRule
	deleted bool
}

type dumpTable struct {
	name   string
	chains []*dumpChain
}

func (t *dumpTable) chain(name string) *dumpChain {
	for _, c := range t.chains {
		if c.name == name {
			return c
		}
	}
	return nil
}

var (
	declareChainRe = regexp.MustCompile(`^:([^ ]*) - \[([0-9]*):([0-9]*)\]$`)
	addRuleRe      = regexp.MustCompile(`^-A ([^ ]*) (.*)$`)
	deleteChainRe  = regexp.MustCompile(`^-X (.*)$`)
	wordRe         = regexp.MustCompile(`(?:^|\s)("[^"]*"|[^"]\S*)`)
)

// parseDump follows iptablestest.ParseIPTablesDump.
func parseDump(data string) ([]*dumpTable, error) {
	const (
		wantTable = iota
		wantDecls
		wantRules
	)
	var tables []*dumpTable
	var t *dumpTable
	state := wantTable
	for _, line := range strings.Split(strings.Trim(data, "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if state == wantTable {
			if !strings.HasPrefix(line, "*") {
				return nil, fmt.Errorf("table %d starts with %q", len(tables)+1, line)
			}
			t = &dumpTable{name: line[1:]}
			tables = append(tables, t)
			state = wantDecls
			continue
		}
		if state == wantDecls {
			if m := declareChainRe.FindStringSubmatch(line); m != nil {
				t.chains = append(t.chains, &dumpChain{name: m[1]})
				continue
			}
			state = wantRules
		}
		switch {
		case addRuleRe.MatchString(line):
			m := addRuleRe.FindStringSubmatch(line)
			c := t.chain(m[1])
			if c == nil {
				return nil, fmt.Errorf("rule %q: no such chain %q", line, m[1])
			}
			if c.deleted {
				return nil, fmt.Errorf("rule %q: chain %q deleted", line, m[1])
			}
			c.rules = append(c.rules, parseRule(line))
		case deleteChainRe.MatchString(line):
			name := deleteChainRe.FindStringSubmatch(line)[1]
			c := t.chain(name)
			if c == nil {
				return nil, fmt.Errorf("%q: no such chain", line)
			}
			if len(c.rules) != 0 {
				return nil, fmt.Errorf("cannot delete chain %q after adding rules", name)
			}
			c.deleted = true
		case line == "COMMIT":
			state = wantTable
		default:
			return nil, fmt.Errorf("error parsing rule %q", line)
		}
	}
	if state != wantTable {
		return nil, fmt.Errorf("no COMMIT line")
	}
	return tables, nil
}

// parseRule extracts what sorting needs: the (unquoted) comment.
func parseRule(line string) dumpRule {
	r := dumpRule{raw: line}
	var words []string
	for _, m := range wordRe.FindAllStringSubmatch(line, -1) {
		words = append(words, strings.Trim(m[1], `"`))
	}
	for i := 0; i+1 < len(words); i++ {
		if words[i] == "--comment" {
			c := words[i+1]
			r.comment = &c
			break
		}
	}
	return r
}

// commentServiceName is the comment up to the first space or colon.
func commentServiceName(r dumpRule) string {
	name := *r.comment
	if i := strings.IndexAny(name, " :"); i != -1 {
		name = name[:i]
	}
	return name
}

// byServiceName is orderByCommentServiceName: undefined (false) when
// either rule has no comment.
func byServiceName(a, b dumpRule) bool {
	if a.comment == nil || b.comment == nil {
		return false
	}
	return commentServiceName(a) < commentServiceName(b)
}

// chainLess is sortIPTablesRules' chain order.
func chainLess(a, b string) bool {
	const np, svcs = "KUBE-NODEPORTS", "KUBE-SERVICES"
	aKube, bKube := strings.HasPrefix(a, "KUBE-"), strings.HasPrefix(b, "KUBE-")
	switch {
	case a == np:
		return true
	case b == np:
		return false
	case a == svcs:
		return true
	case b == svcs:
		return false
	case aKube && !bKube:
		return true
	case !aKube && bKube:
		return false
	default:
		return a < b
	}
}

// normalizeRestore is sortIPTablesRules followed by IPTablesDump.String.
func normalizeRestore(data string) (string, error) {
	tables, err := parseDump(data)
	if err != nil {
		return "", err
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].name < tables[j].name })
	for _, t := range tables {
		sort.Slice(t.chains, func(i, j int) bool { return chainLess(t.chains[i].name, t.chains[j].name) })
		for _, name := range []string{"KUBE-NODEPORTS", "KUBE-SERVICES"} {
			c := t.chain(name)
			if c == nil {
				continue
			}
			lastRule := t.name == "nat" && name == "KUBE-SERVICES"
			sort.SliceStable(c.rules, func(i, j int) bool {
				if lastRule {
					if ri := c.rules[i]; ri.comment != nil && strings.Contains(*ri.comment, "must be the last rule") {
						return false
					} else if rj := c.rules[j]; rj.comment != nil && strings.Contains(*rj.comment, "must be the last rule") {
						return true
					}
				}
				return byServiceName(c.rules[i], c.rules[j])
			})
		}
	}
	var b strings.Builder
	for _, t := range tables {
		fmt.Fprintf(&b, "*%s\n", t.name)
		for _, c := range t.chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c.name)
		}
		for _, c := range t.chains {
			for _, r := range c.rules {
				fmt.Fprintf(&b, "%s\n", r.raw)
			}
		}
		for _, c := range t.chains {
			if c.deleted {
				fmt.Fprintf(&b, "-X %s\n", c.name)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String(), nil
}

// checkRuleJumps is checkIPTablesRuleJumps, for full-sync payloads.
func checkRuleJumps(data string) error {
	tables, err := parseDump(data)
	if err != nil {
		return err
	}
	builtinTargets := []string{"ACCEPT", "REJECT", "DROP", "MARK", "RETURN", "DNAT", "SNAT", "MASQUERADE"}
	topLevel := []string{"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
		"KUBE-FORWARD", "KUBE-MARK-MASQ", "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL"}
	jumpRe := regexp.MustCompile(`-j ([^ ]*)`)
	for _, t := range tables {
		created, filled, jumped := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, c := range t.chains {
			if !c.deleted {
				created[c.name] = true
			}
			if len(c.rules) > 0 {
				filled[c.name] = true
			}
			for _, r := range c.rules {
				if m := jumpRe.FindStringSubmatch(r.raw); m != nil && !slices.Contains(builtinTargets, m[1]) {
					jumped[m[1]] = true
				}
			}
		}
		var missing, empty, extra []string
		for c := range jumped {
			if !created[c] {
				missing = append(missing, c)
			}
			if !filled[c] && c != "KUBE-NODEPORTS" {
				empty = append(empty, c)
			}
		}
		for c := range filled {
			if !created[c] {
				missing = append(missing, c)
			}
		}
		for c := range created {
			if !jumped[c] && !slices.Contains(topLevel, c) {
				extra = append(extra, c)
			}
		}
		slices.Sort(missing)
		slices.Sort(empty)
		slices.Sort(extra)
		switch {
		case len(missing) > 0:
			return fmt.Errorf("some chains in %s are used but were not created: %v", t.name, missing)
		case len(empty) > 0:
			return fmt.Errorf("some chains in %s are jumped to but have no rules: %v", t.name, empty)
		case len(extra) > 0:
			return fmt.Errorf("some chains in %s are created but not used: %v", t.name, extra)
		}
	}
	return nil
}

// assertRulesEqual is assertIPTablesRulesEqual: normalise got, diff it with
// want (a golden dump, already in normal order).
func assertRulesEqual(t *testing.T, want string, got []byte) {
	t.Helper()
	norm, err := normalizeRestore(string(got))
	if err != nil {
		t.Fatalf("normalising payload: %v\n%s", err, got)
	}
	if diff := cmp.Diff(strings.TrimLeft(want, "\n"), norm); diff != "" {
		t.Errorf("rules differ from golden (-want +got):\n%s\nraw payload:\n%s", diff, got)
	}
}

func TestNormalizeSortsLikeUpstreamSortIPTablesRules(t *testing.T) {
	in := `*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-B - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-OLD - [0:0]
:POSTROUTING - [0:0]
:KUBE-A - [0:0]
-A KUBE-SVC-B -m comment --comment "ns2/b:p cluster IP" -j KUBE-A
-A KUBE-SERVICES -m comment --comment "ns2/b:p cluster IP" -j KUBE-SVC-B
-A KUBE-NODEPORTS -m comment --comment ns2/b:p -j KUBE-SVC-B
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS
-A KUBE-SERVICES -m comment --comment "ns1/a:p cluster IP" -j KUBE-A
-A KUBE-NODEPORTS -m comment --comment ns1/a -j KUBE-A
-X KUBE-OLD
-A KUBE-A -j MARK
COMMIT
*filter
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -j ACCEPT
COMMIT
`
	want := `*filter
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -j ACCEPT
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-A - [0:0]
:KUBE-OLD - [0:0]
:KUBE-SVC-B - [0:0]
:POSTROUTING - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/a -j KUBE-A
-A KUBE-NODEPORTS -m comment --comment ns2/b:p -j KUBE-SVC-B
-A KUBE-SERVICES -m comment --comment "ns1/a:p cluster IP" -j KUBE-A
-A KUBE-SERVICES -m comment --comment "ns2/b:p cluster IP" -j KUBE-SVC-B
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS
-A KUBE-A -j MARK
-A KUBE-SVC-B -m comment --comment "ns2/b:p cluster IP" -j KUBE-A
-X KUBE-OLD
COMMIT
`
	got, err := normalizeRestore(in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("normalizeRestore (-want +got):\n%s", diff)
	}
}

func TestNormalizeRejectsMalformedDumps(t *testing.T) {
	for name, in := range map[string]string{
		"rule in undeclared chain": "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SVC-X -j DROP\nCOMMIT\n",
		"delete after rules":       "*nat\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j DROP\n-X KUBE-SVC-X\nCOMMIT\n",
		"missing COMMIT":           "*nat\n:KUBE-SERVICES - [0:0]\n",
		"garbage line":             "*nat\n:KUBE-SERVICES - [0:0]\n-I KUBE-SERVICES 1 -j DROP\nCOMMIT\n",
	} {
		if _, err := normalizeRestore(in); err == nil {
			t.Errorf("%s: normalizeRestore accepted %q", name, in)
		}
	}
}

func TestCheckRuleJumpsFindsDanglingEmptyAndUnusedChains(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{"*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-X\n-A KUBE-SVC-X -j KUBE-MARK-MASQ\nCOMMIT\n", "used but were not created"},
		{"*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-X\nCOMMIT\n", "jumped to but have no rules"},
		{"*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\nCOMMIT\n", "created but not used"},
		{"*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n-A KUBE-SERVICES -j KUBE-NODEPORTS\nCOMMIT\n", ""},
	} {
		err := checkRuleJumps(tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("checkRuleJumps(%q) = %v, want nil", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("checkRuleJumps(%q) = %v, want %q", tc.in, err, tc.wantErr)
		}
	}
}
