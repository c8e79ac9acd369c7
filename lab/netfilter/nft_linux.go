//go:build linux

package netfilter

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// NFT runs nft programs in a namespace: kube-proxy's nftables mode, which
// sigs.k8s.io/knftables drives the same way (`nft -f -`, one transaction).
type NFT struct{}

func (NFT) Tools() []string { return []string{"nft"} }

// Apply runs script with `nft -f -` inside the namespace: one atomic
// transaction, so a failed one changes nothing.
func (NFT) Apply(n Namespace, script string) error {
	var stderr bytes.Buffer
	err := n.Do(func() error {
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		cmd.Stderr = &stderr
		return cmd.Run()
	})
	if err != nil {
		return fmt.Errorf("nft -f in %s: %w: %s%s", n, err, strings.TrimSpace(stderr.String()),
			OffendingLine(nftLineNumber(stderr.String()), script))
	}
	return nil
}

// List is `nft list table ip <table>` in the namespace; counters and
// stateful objects as nft prints them.
func (NFT) List(n Namespace, table string) (string, error) {
	var out, stderr bytes.Buffer
	err := n.Do(func() error {
		cmd := exec.Command("nft", "list", "table", "ip", table)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		return cmd.Run()
	})
	if err != nil {
		return "", fmt.Errorf("nft list table ip %s in %s: %w: %s", table, n, err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// nftLineNumber turns nft's "/dev/stdin:12:5-9: Error: ..." into "12" for
// OffendingLine.
func nftLineNumber(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if rest, ok := strings.CutPrefix(l, "/dev/stdin:"); ok {
			if num, _, ok := strings.Cut(rest, ":"); ok {
				return num
			}
		}
	}
	return ""
}
