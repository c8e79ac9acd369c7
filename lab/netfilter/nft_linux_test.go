//go:build linux

package netfilter

import "testing"

func TestNFTErrorQuotesTheRejectedLine(t *testing.T) {
	script := "add table ip kube-proxy\nadd chain ip kube-proxy bogus { type nat hook nowhere priority 0 ; }\n"
	stderr := "/dev/stdin:2:48-54: Error: unknown chain hook\nadd chain ip kube-proxy bogus { type nat hook nowhere priority 0 ; }\n"
	got := OffendingLine(nftLineNumber(stderr), script)
	want := "\n  line 2: add chain ip kube-proxy bogus { type nat hook nowhere priority 0 ; }"
	if got != want {
		t.Errorf("quoted %q, want %q", got, want)
	}
}
