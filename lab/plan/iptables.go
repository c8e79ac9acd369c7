package plan

import (
	"strings"
)

// restoreTables is an iptables-restore payload split by table.
type restoreTables struct {
	order []string
	decls map[string][]string
	rules map[string][]string
}

func parseRestore(payload string, into *restoreTables) {
	if into.decls == nil {
		into.decls, into.rules = map[string][]string{}, map[string][]string{}
	}
	table := ""
	for _, l := range strings.Split(payload, "\n") {
		switch {
		case l == "" || strings.HasPrefix(l, "#") || l == "COMMIT":
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			if _, ok := into.decls[table]; !ok {
				into.order = append(into.order, table)
				into.decls[table] = nil
			}
		case strings.HasPrefix(l, ":"):
			name, _, _ := strings.Cut(l[1:], " ")
			dup := false
			for _, d := range into.decls[table] {
				if n, _, _ := strings.Cut(d[1:], " "); n == name {
					dup = true
				}
			}
			if !dup {
				into.decls[table] = append(into.decls[table], l)
			}
		default:
			into.rules[table] = append(into.rules[table], l)
		}
	}
}

// mergeRestore joins payloads table by table: chain declarations once, rules
// in payload order. A node's first restore is kube-proxy's payload with its
// jumps, then aws-node's rules, so built-in chains hold kube-proxy's jumps
// first, as on a node where kube-proxy prepends and aws-node appends.
func mergeRestore(payloads ...string) string {
	var t restoreTables
	for _, p := range payloads {
		parseRestore(p, &t)
	}
	var b strings.Builder
	for _, table := range t.order {
		b.WriteString("*" + table + "\n")
		for _, d := range t.decls[table] {
			b.WriteString(d + "\n")
		}
		for _, r := range t.rules[table] {
			b.WriteString(r + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
