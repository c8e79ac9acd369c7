package netfilter

import (
	"sort"
	"strconv"
	"strings"
)

// RuleCounters reads `iptables-save -c` output into packet counts per rule
// (the rule text without its counter).
func RuleCounters(save string) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "[") {
			continue
		}
		end := strings.IndexByte(l, ']')
		if end < 0 {
			continue
		}
		pk, _, _ := strings.Cut(l[1:end], ":")
		n, err := strconv.ParseUint(pk, 10, 64)
		if err != nil {
			continue
		}
		out[strings.TrimSpace(l[end+1:])] += n
	}
	return out
}

// MovedChains lists the chains (prefix filtered) with a rule whose packet
// counter grew between two dumps, in the order they appear in after.
func MovedChains(before, after string, prefix string) []string {
	b := RuleCounters(before)
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(after, "\n") {
		end := strings.IndexByte(l, ']')
		if !strings.HasPrefix(l, "[") || end < 0 {
			continue
		}
		rule := strings.TrimSpace(l[end+1:])
		if RuleCounters(l)[rule] <= b[rule] {
			continue
		}
		f := strings.Fields(rule)
		if len(f) < 2 || f[0] != "-A" || !strings.HasPrefix(f[1], prefix) || seen[f[1]] {
			continue
		}
		seen[f[1]] = true
		out = append(out, f[1])
	}
	return out
}

// TraversalOrder sorts kube-proxy chains in the order a new connection
// walks them: KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXT, KUBE-FW, KUBE-MARK-MASQ,
// KUBE-SVC/SVL, KUBE-SEP, then KUBE-POSTROUTING.
func TraversalOrder(chains []string) []string {
	rank := func(c string) int {
		for i, p := range []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXT-", "KUBE-FW-", "KUBE-MARK-MASQ",
			"KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-POSTROUTING"} {
			if strings.HasPrefix(c, p) {
				return i
			}
		}
		return 99
	}
	out := append([]string(nil), chains...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// TranslationChains keeps the kube-proxy chains that translate a Service
// flow (KUBE-SERVICES, KUBE-NODEPORTS, KUBE-EXT/SVC/SVL/SEP/FW, KUBE-MARK-MASQ),
// leaving out KUBE-POSTROUTING and KUBE-FORWARD, whose first rules count
// every forwarded connection or packet whatever its destination.
func TranslationChains(chains []string) []string {
	var out []string
	for _, c := range chains {
		if c != "KUBE-POSTROUTING" && c != "KUBE-FORWARD" && !strings.HasPrefix(c, "KUBE-PROXY") {
			out = append(out, c)
		}
	}
	return out
}
