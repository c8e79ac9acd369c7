// Package netfilter is the seam between the rules labctl renders (pure
// text: kube-proxy's and the VPC CNI's iptables-restore payloads, an NLB's
// nat rules) and the kernel that holds them. A Backend restores a payload
// into one namespace as one transaction and saves a namespace's rules with
// their counters; iptables-nft and iptables-legacy are the kernel backends,
// and Fake records what would be applied, for unit tests without root.
// An NFTProgram runs nft programs (kube-proxy's nftables mode); NFT is the
// kernel one.
package netfilter

import (
	"fmt"
	"strings"
	"sync"
)

// Namespace is where a backend acts: a lab namespace (ns.NS) runs the
// backend's programs inside itself.
type Namespace interface {
	Do(fn func() error) error
	String() string
}

// Backend applies and reads one namespace's rules.
type Backend interface {
	// Name is the topology's word for the backend: "nft" or "legacy".
	Name() string
	// Tools are the programs the backend needs on PATH.
	Tools() []string
	// Restore applies payload as one transaction; noflush keeps the chains
	// the payload does not declare (kube-proxy's partial syncs).
	Restore(n Namespace, payload string, noflush bool) error
	// Save dumps the rules of the tables named (every table for none);
	// counters adds each rule's [packets:bytes].
	Save(n Namespace, counters bool, tables ...string) (string, error)
}

// NFTProgram applies and lists nftables tables in a namespace.
type NFTProgram interface {
	// Apply runs an `nft -f` program as one transaction.
	Apply(n Namespace, script string) error
	// List prints one "ip" family table.
	List(n Namespace, table string) (string, error)
}

// Fake is a Backend and an NFTProgram that keeps every restored payload and answers Save
// from SaveText, for unit tests of the code that drives a backend.
type Fake struct {
	mu sync.Mutex
	// Restored are the payloads applied, in order, per namespace.
	Restored map[string][]string
	// SaveText is what Save answers, per namespace.
	SaveText map[string]string
	// Fail, if set, is the error of every Restore (a rejected payload).
	Fail error
	// Applied are the nft programs run, in order, per namespace; ListText
	// is what List answers, per namespace; NFTFail fails every Apply.
	Applied  map[string][]string
	ListText map[string]string
	NFTFail  error
}

// NewFake is an empty Fake.
func NewFake() *Fake {
	return &Fake{Restored: map[string][]string{}, SaveText: map[string]string{},
		Applied: map[string][]string{}, ListText: map[string]string{}}
}

func (f *Fake) Apply(n Namespace, script string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NFTFail != nil {
		return fmt.Errorf("nft -f in %s: %w", n, f.NFTFail)
	}
	f.Applied[n.String()] = append(f.Applied[n.String()], script)
	return nil
}

func (f *Fake) List(n Namespace, table string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ListText[n.String()], nil
}

func (f *Fake) Name() string    { return "fake" }
func (f *Fake) Tools() []string { return nil }

func (f *Fake) Restore(n Namespace, payload string, noflush bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return fmt.Errorf("restore in %s: %w", n, f.Fail)
	}
	f.Restored[n.String()] = append(f.Restored[n.String()], payload)
	return nil
}

func (f *Fake) Save(n Namespace, counters bool, tables ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.SaveText[n.String()], nil
}

// OffendingLine quotes the payload line a restore program complained
// about ("line 12 failed"), so an error names the rule, not only its number.
func OffendingLine(stderr, payload string) string {
	var line int
	for _, f := range strings.Fields(stderr) {
		if _, err := fmt.Sscanf(f, "%d", &line); err == nil && line > 0 {
			break
		}
	}
	lines := strings.Split(payload, "\n")
	if line <= 0 || line > len(lines) {
		return ""
	}
	return fmt.Sprintf("\n  line %d: %s", line, lines[line-1])
}
