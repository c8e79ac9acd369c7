package kernel

import (
	"fmt"
	"sort"
	"strings"
)

// nftTableChains are the chain names of an `nft list table` listing.
func nftTableChains(listing string) []string {
	var out []string
	for _, l := range strings.Split(listing, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "chain "); ok {
			if name, ok := strings.CutSuffix(rest, " {"); ok {
				out = append(out, name)
			}
		}
	}
	return out
}

// nftScriptChains are the chains an `nft -f` program adds to table.
func nftScriptChains(script, table string) map[string]bool {
	out := map[string]bool{}
	prefix := "add chain ip " + table + " "
	for _, l := range strings.Split(script, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			name, _, _ := strings.Cut(rest, " ")
			out[name] = true
		}
	}
	return out
}

// nftLeftoverChains are the per-Service and per-endpoint chains the kernel
// holds that want does not: only names with a '/' are kube-proxy's
// per-Service chains (upstream's isServiceChainName), so a base chain is
// never one.
func nftLeftoverChains(kernel []string, want map[string]bool) []string {
	var out []string
	for _, c := range kernel {
		if strings.Contains(c, "/") && !want[c] {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// nftDeleteChains is the transaction that empties and deletes chains.
func nftDeleteChains(table string, chains []string) string {
	var b strings.Builder
	for _, c := range chains {
		fmt.Fprintf(&b, "flush chain ip %s %s\ndelete chain ip %s %s\n", table, c, table, c)
	}
	return b.String()
}
