//go:build linux

package netfilter

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/labctl/labctl/lab/netfilter/nftwire"
)

// NFT applies kube-proxy's nftables programs in a namespace: kube-proxy's
// nftables mode, which sigs.k8s.io/knftables drives with `nft -f -`, one
// transaction per sync.
//
// A program nftwire can encode (kube-proxy's partial syncs: chains, the
// Service and endpoint rules, map elements) is sent to the kernel as
// netlink messages, one batch; anything else (the full sync with its
// table, base chains and typed maps) runs `nft -f -`. Both are one atomic
// transaction and leave the same kernel state (the equivalence test); the
// netlink path skips nft's cache load of the whole table, which at 1,000
// Services costs more than the change itself.
type NFT struct {
	// Exec always runs nft, as kube-proxy does (benchmarks compare both).
	Exec bool
}

// NFTStats counts, process-wide, the programs each path applied.
var NFTStats struct{ Netlink, Exec atomic.Int64 }

func (NFT) Tools() []string { return []string{"nft"} }

// Apply applies script in the namespace as one transaction, so a failed
// one changes nothing.
func (f NFT) Apply(n Namespace, script string) error {
	if !f.Exec {
		used, err := applyNetlink(n, script)
		if used {
			if err != nil {
				return fmt.Errorf("nf_tables netlink in %s: %w%s", n, err, OffendingLine(err.Error(), script))
			}
			NFTStats.Netlink.Add(1)
			return nil
		}
	}
	NFTStats.Exec.Add(1)
	return execNFT(n, script)
}

// applyNetlink sends script as netlink messages when nftwire encodes all of
// it; used is false (and nothing was sent) when it does not.
func applyNetlink(n Namespace, script string) (used bool, err error) {
	err = n.Do(func() error {
		c, err := nftwire.Open()
		if err != nil {
			return err
		}
		defer c.Close()
		msgs, err := nftwire.Compile(script, c.SetInfo)
		if errors.Is(err, nftwire.ErrUnsupported) {
			return nil
		}
		if err != nil {
			used = true
			return err
		}
		used = true
		return c.Send(msgs)
	})
	if err != nil && !used {
		// The socket could not be opened: nft reports what is wrong.
		return false, nil
	}
	return used, err
}

// execNFT runs script with `nft -f -` inside the namespace.
func execNFT(n Namespace, script string) error {
	var stderr bytes.Buffer
	err := n.Do(func() error {
		cmd := exec.Command("nft", "-f", "-")
		cmd.Env = nftEnv(os.Environ())
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
		cmd.Env = nftEnv(os.Environ())
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

// nftMallocTunable has nft's glibc malloc (2.35 and later) madvise its heap
// for transparent huge pages. nft 1.0.6 loads the table's chains and sets
// into its cache before every transaction and parses the whole script into
// malloc'd objects; on this VM each 4 KiB page fault is expensive, and with
// huge pages a full sync of 1,000 Services faults 1.9k times instead of
// 12k (task-clock 515 -> 370 ms, perf stat; a two-line `nft -f` 64 -> 29
// ms). It changes nothing nft sends to the kernel. Where THP is off it is
// a no-op, and glibcs that do not know it ignore it.
const nftMallocTunable = "glibc.malloc.hugetlb=1"

// nftEnv returns environ with nftMallocTunable added to GLIBC_TUNABLES,
// keeping any tunables already set (and a hugetlb choice already made).
func nftEnv(environ []string) []string {
	out := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GLIBC_TUNABLES="); ok {
			found = true
			if !strings.Contains(v, "glibc.malloc.hugetlb=") {
				if v != "" {
					v += ":"
				}
				kv = "GLIBC_TUNABLES=" + v + nftMallocTunable
			}
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GLIBC_TUNABLES="+nftMallocTunable)
	}
	return out
}
