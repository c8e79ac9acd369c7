//go:build linux

package netfilter

import (
	"slices"
	"testing"
)

func TestNFTErrorQuotesTheRejectedLine(t *testing.T) {
	script := "add table ip kube-proxy\nadd chain ip kube-proxy bogus { type nat hook nowhere priority 0 ; }\n"
	stderr := "/dev/stdin:2:48-54: Error: unknown chain hook\nadd chain ip kube-proxy bogus { type nat hook nowhere priority 0 ; }\n"
	got := OffendingLine(nftLineNumber(stderr), script)
	want := "\n  line 2: add chain ip kube-proxy bogus { type nat hook nowhere priority 0 ; }"
	if got != want {
		t.Errorf("quoted %q, want %q", got, want)
	}
}

// nft runs with malloc on huge pages, without losing a tunable the caller
// set or overriding a hugetlb choice it made.
func TestNFTEnvAddsTheHugePageTunableKeepingOthers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"none set", []string{"PATH=/bin"}, []string{"PATH=/bin", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"}},
		{"others set", []string{"GLIBC_TUNABLES=glibc.malloc.arena_max=2", "A=b"},
			[]string{"GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "A=b"}},
		{"empty", []string{"GLIBC_TUNABLES="}, []string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=1"}},
		{"caller chose", []string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}, []string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=0"}},
	} {
		if got := nftEnv(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
