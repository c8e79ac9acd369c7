// Command mutate applies, one at a time, small breakages ("mutations") of
// labctl's data path, renderers and walk checker to a scratch copy of the
// committed tree, runs the narrowest test that should notice each, and
// prints a table of which were killed (the test failed) and which survived.
// A survivor is a gap in the tests. See docs/testing.md.
//
//	go run ./scripts/mutate                 # every mutation
//	go run ./scripts/mutate -only 'lb-|walk-' # a subset, by id regexp
//	go run ./scripts/mutate -list           # the list, checked, nothing run (from the tree's root)
//
// The working tree is never touched: HEAD is exported with `git archive`
// into a temporary directory, each mutation is written there, tested and
// reverted. e2e mutations need root and wait for the suite's machine-wide
// lock (/run/lock/labctl-e2e.lock) like any e2e run.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// mutation is one exact, single-occurrence replacement in one file.
type mutation struct {
	ID   string
	File string
	Old  string
	New  string
	Test string // run with bash -c at the scratch tree's root
	Why  string // what the mutation breaks, in words
}

const (
	unitWalk = "go test -count=1 ./lab/walk/"
	unitLB   = "go test -count=1 ./lab/lb/"
	unitPlan = "go test -count=1 ./lab/plan/ ./lab/walk/"
	unitKP   = "go test -count=1 ./lab/kubeproxy/"
	unitCl   = "go test -count=1 ./lab/cluster/ ./lab/lb/"
)

// e2e runs one focused spec of the e2e suite (root, a real lab).
func e2e(focus string) string {
	return fmt.Sprintf("go test -count=1 -timeout 20m ./e2e/ -ginkgo.no-color -ginkgo.focus=%q", focus)
}

var mutations = []mutation{
	// The walk checker.
	{"walk-dst-mac", "lab/walk/check.go", `mac("dst MAC", h.DstMAC, p.DstMAC)`, `mac("dst MAC", h.DstMAC, h.DstMAC)`, unitWalk,
		"the checker ignores destination MACs"},
	{"walk-dst-mac-e2e", "lab/walk/check.go", `mac("dst MAC", h.DstMAC, p.DstMAC)`, `mac("dst MAC", h.DstMAC, h.DstMAC)`,
		e2e("walk checker on a real capture"), "the same, caught on walk A3's real capture"},
	{"walk-src-mac", "lab/walk/check.go", `mac("src MAC", h.SrcMAC, p.SrcMAC)`, `mac("src MAC", h.SrcMAC, h.SrcMAC)`, unitWalk,
		"the checker ignores source MACs"},
	{"walk-src-ip", "lab/walk/check.go", `if h.Src.IsValid() && h.Src != p.Src {`, `if false && h.Src != p.Src {`, unitWalk,
		"the checker ignores source addresses (a missing SNAT passes)"},
	{"walk-dst-port", "lab/walk/check.go", `if h.DstPort != 0 && h.DstPort != p.DstPort {`, `if false && h.DstPort != p.DstPort {`, unitWalk,
		"the checker ignores destination ports (a missing DNAT port passes)"},
	{"walk-stray-off", "lab/walk/check.go", `if allowed[k] || len(seen[k]) == 0 {`, `if true || len(seen[k]) == 0 {`, unitWalk,
		"the stray-flow check is off: the flow may show up off its path"},
	{"walk-stray-off-e2e", "lab/walk/check.go", `if allowed[k] || len(seen[k]) == 0 {`, `if true || len(seen[k]) == 0 {`,
		e2e("walk checker on a real capture"), "the same, caught on walk A3's real capture"},
	{"walk-rst-ok", "lab/walk/check.go", `if p.Proto == "tcp" && p.TCP.RST {`, `if false && p.TCP.RST {`, unitWalk,
		"a TCP reset matches a hop"},
	{"walk-redirect-off", "lab/walk/check.go", `p.Proto == "icmp" && p.ICMPType == layers.ICMPv4TypeRedirect && p.Dir == Out`,
		`false && p.ICMPType == layers.ICMPv4TypeRedirect && p.Dir == Out`, unitWalk, "an ICMP redirect in the capture is not a finding"},
	{"walk-a0-permanent", "lab/walk/state.go", `ok && nb != nil && nb.Permanent && bytes.Equal(nb.MAC, hv.MAC)`,
		`ok && nb != nil && bytes.Equal(nb.MAC, hv.MAC)`, unitWalk, "A0 accepts a learned 169.254.1.1 entry (survivor 3 of the first run)"},
	{"walk-a0-mac", "lab/walk/state.go", `ok && nb != nil && nb.Permanent && bytes.Equal(nb.MAC, hv.MAC)`,
		`ok && nb != nil && nb.Permanent && bytes.Equal(nb.MAC, nb.MAC)`, unitWalk, "A0 accepts any MAC for 169.254.1.1"},
	{"walk-points-veths", "lab/walk/expect.go", `if p.Node == n.Name {`, `if p.Node == n.Name && p.Name == e.Object {`, unitWalk,
		"a walk no longer listens on the other pods' veths of its ends' nodes (survivor 5)"},
	{"walk-points-enis", "lab/walk/expect.go", `add(n.Name, spec.ENIName(*eni.Index))`, `add(n.Name, spec.ENIName(0*(*eni.Index)))`, unitWalk,
		"a walk listens on the primary ENI only"},
	{"walk-direct-secondary", "lab/walk/expect.go", `direct := egress == 0 && sub.CIDR.Contains(b.IP) && !m.isLB(a.Instance)`,
		`direct := sub.CIDR.Contains(b.IP) && !m.isLB(a.Instance)`, unitWalk,
		"the expectation has a secondary-ENI pod switched on-link instead of routed (A4)"},
	{"walk-lb-preserved-src", "lab/walk/lbwalk.go", `src, sport2 = from.IP, sport`, `src, sport2 = node.IP, sport`, unitWalk,
		"the expectation SNATs a preserved client to the NLB node"},
	// The load balancers.
	{"lb-preserve-instance", "lab/lb/build.go", `tg.PreserveClientIP = on`, `tg.PreserveClientIP = on || targetType == TargetInstance`, unitLB,
		"preserve_client_ip.enabled=false is ignored for instance targets (survivor 1)"},
	{"lb-preserve-instance-e2e", "lab/lb/build.go", `tg.PreserveClientIP = on`, `tg.PreserveClientIP = on || targetType == TargetInstance`,
		e2e("preserve_client_ip.enabled=false"), "the same, caught by walks C1-b and C1-hairpin on a lab with the attribute"},
	{"lb-probability", "lab/lb/render.go", `1/float64(left)`, `1/float64(len(targets))`, unitLB,
		"the NLB's statistic probabilities are 1/n on every rule (survivor 4: wrong from 3 targets)"},
	{"lb-snat-node", "lab/lb/render.go", "-j SNAT --to-source %s`, n.Index+1, n.IP)", "-j SNAT --to-source %s`, n.Index+1, l.Nodes[0].IP)", unitLB,
		"every NLB node SNATs to the first node's address"},
	{"lb-mark-inverted", "lab/lb/render.go", `if !li.Group.PreserveClientIP && len(targets) > 0 {`, `if li.Group.PreserveClientIP && len(targets) > 0 {`, unitLB,
		"the NLB SNATs the groups that preserve the client, and not the others"},
	{"lb-reset-failopen", "lab/lb/render.go", `if !failOpen && h.Unhealthy(g, t) {`, `if (failOpen || !failOpen) && h.Unhealthy(g, t) {`, unitLB,
		"the NLB resets flows even when it fails open"},
	{"lb-arrival-mark", "lab/lb/render.go", `return uint32(node+1) << 8`, `return uint32(node+1) << 4`, unitLB,
		"arrival marks overlap the SNAT marks"},
	{"lb-crosszone", "lab/lb/build.go", `if g.CrossZone || t.AZ == az {`, `if true || t.AZ == az {`, unitLB,
		"cross-zone off still spreads over every AZ"},
	// kube-proxy's rules.
	{"kp-probability", "lab/kubeproxy/service.go", `r.probability(n-i)`, `r.probability(n)`, unitKP,
		"kube-proxy's statistic probability is 1/n on every endpoint rule"},
	{"kp-probability-e2e", "lab/kubeproxy/service.go", `r.probability(n-i)`, `r.probability(n)`, e2e("splits them evenly"),
		"the same, caught by a walk: B1-spread's split over 1200 connections"},
	{"kp-masquerade", "lab/kubeproxy/render.go", `"-j", "MASQUERADE", "--random-fully")`, `"-j", "RETURN", "--random-fully")`, unitKP,
		"KUBE-POSTROUTING no longer masquerades"},
	// The node and pod plumbing the plan renders.
	{"plan-rule-1024-mark", "lab/plan/plan.go", `Rule{Priority: 1024, Mark: 0x80, Mask: 0x80, Table: 254}`,
		`Rule{Priority: 1024, Mark: 0x40, Mask: 0x80, Table: 254}`, unitPlan, "rule 1024 matches the wrong connmark"},
	{"plan-rule-1536-table", "lab/plan/plan.go", `Rule{Priority: 1536, Src: host, Table: spec.RouteTable(pd.ENI)}`,
		`Rule{Priority: 1536, Src: host, Table: 254}`, unitPlan, "a secondary-ENI pod's traffic uses main, not its ENI's table"},
	{"plan-rule-512-table", "lab/plan/plan.go", `Rule{Priority: 512, Dst: host, Table: 254}`, `Rule{Priority: 512, Dst: host, Table: 255}`,
		unitPlan, "rule 512 looks up the local table"},
	{"plan-proxy-eni", "lab/plan/plan.go", `Neigh{Dev: spec.ENIName(pd.ENI), IP: pd.IP, Proxy: true}`,
		`Neigh{Dev: spec.ENIName(0), IP: pd.IP, Proxy: true}`, unitPlan, "every pod's proxy ARP entry sits on eth0"},
	{"plan-pod-gw-mac", "lab/plan/plan.go", `ns.Neighs = []Neigh{{Dev: "eth0", IP: spec.PodGateway, MAC: vethMAC}}`,
		`ns.Neighs = []Neigh{{Dev: "eth0", IP: spec.PodGateway, MAC: spec.PodMAC(pd.Namespace, pd.Name)}}`, unitPlan,
		"the pod's static 169.254.1.1 entry has the pod's own MAC"},
	{"plan-rp-filter", "lab/plan/node.go", `amiRPFilterIf  = "2"`, `amiRPFilterIf  = "1"`, unitPlan,
		"rp_filter strict on the nodes' interfaces"},
	{"plan-snat-vpc", "lab/plan/node.go", "--comment \"AWS SNAT CHAIN\" -j RETURN`, vpc)", "--comment \"AWS SNAT CHAIN\" -j RETURN`, \"0.0.0.0/0\")",
		unitPlan, "the VPC CNI never SNATs pod egress (RETURN for every destination)"},
	{"plan-connmark", "lab/plan/node.go", `--limit-iface-in -j CONNMARK --set-xmark 0x80/0x80`, `--limit-iface-in -j CONNMARK --set-xmark 0x40/0x80`,
		unitPlan, "NodePort flows on the primary ENI are not connmarked 0x80"},
	// Endpoints.
	{"cluster-ready-terminating", "lab/cluster/cluster.go", `func (e Endpoint) Ready() bool { return e.Phase == "" }`,
		`func (e Endpoint) Ready() bool { return e.Phase != spec.PodStarting }`, unitCl,
		"terminating endpoints count as ready (kube-proxy and the NLB keep sending new flows)"},
	// The tests' own helpers.
	{"e2e-host-state-empty", "e2e/lifecycle_test.go", `return b.String()`, `return ""`, e2e("host state snapshot"),
		"the lifecycle spec's host state snapshot is empty, so before and after always match (survivor 2)"},
}

type result struct {
	m       mutation
	verdict string // killed, survived, timeout, invalid, baseline-fails
	dur     time.Duration
	detail  string
}

func main() {
	only := flag.String("only", "", "run only mutations whose id matches this regexp")
	list := flag.Bool("list", false, "print the mutations and exit")
	unitTimeout := flag.Duration("timeout", 5*time.Minute, "time limit of a unit-test mutation")
	e2eTimeout := flag.Duration("e2e-timeout", 25*time.Minute, "time limit of an e2e mutation (it may wait for the e2e lock)")
	keep := flag.Bool("keep", false, "keep the scratch tree")
	flag.Parse()
	var sel []mutation
	re, err := regexp.Compile(*only)
	if err != nil {
		fatal("-only: %v", err)
	}
	for _, m := range mutations {
		if re.MatchString(m.ID) {
			sel = append(sel, m)
		}
	}
	if *list {
		// Each mutation's text must occur once in the working tree's file.
		bad := 0
		for _, m := range sel {
			b, err := os.ReadFile(m.File)
			n := bytes.Count(b, []byte(m.Old))
			if err != nil || n != 1 {
				bad++
				fmt.Printf("%-26s %-28s INVALID: %d matches %v\n", m.ID, m.File, n, err)
				continue
			}
			fmt.Printf("%-26s %-28s %s\n", m.ID, m.File, m.Test)
		}
		if bad > 0 {
			os.Exit(1)
		}
		return
	}
	root, err := output("git", "rev-parse", "--show-toplevel")
	if err != nil {
		fatal("not in a git tree: %v", err)
	}
	head, _ := output("git", "rev-parse", "--short", "HEAD")
	scratch, err := os.MkdirTemp("", "labctl-mutate-")
	if err != nil {
		fatal("%v", err)
	}
	if !*keep {
		defer os.RemoveAll(scratch)
	}
	// HEAD, never the working tree: the run tests what is committed.
	if out, err := exec.Command("bash", "-c", fmt.Sprintf("git -C %q archive --format=tar HEAD | tar -x -C %q", root, scratch)).CombinedOutput(); err != nil {
		fatal("exporting HEAD to %s: %v\n%s", scratch, err, out)
	}
	fmt.Fprintf(os.Stderr, "mutating %s at %s in %s\n", root, head, scratch)
	baseline := map[string]string{} // test -> "" or why it fails unmutated
	var results []result
	start := time.Now()
	for i, m := range sel {
		limit := *unitTimeout
		if strings.Contains(m.Test, "./e2e/") {
			limit = *e2eTimeout
		}
		if _, done := baseline[m.Test]; !done {
			fmt.Fprintf(os.Stderr, "baseline: %s\n", m.Test)
			code, out, _ := runTest(scratch, m.Test, limit)
			baseline[m.Test] = ""
			if code != 0 {
				baseline[m.Test] = lastLines(out, 5)
			}
		}
		r := result{m: m}
		t0 := time.Now()
		r.verdict, r.detail = apply(scratch, m, limit, baseline[m.Test])
		r.dur = time.Since(t0)
		fmt.Fprintf(os.Stderr, "[%d/%d] %-26s %-9s %s\n", i+1, len(sel), m.ID, r.verdict, r.dur.Round(time.Second))
		results = append(results, r)
	}
	killed, counted := 0, 0
	fmt.Printf("Mutation run of %s, %s, %d mutations in %s.\n\n", head, time.Now().UTC().Format("2006-01-02 15:04 MST"), len(results),
		time.Since(start).Round(time.Second))
	fmt.Println("| # | id | file | mutation | test | result | caught by | time |")
	fmt.Println("|---|----|------|----------|------|--------|-----------|------|")
	for i, r := range results {
		switch r.verdict {
		case "killed", "timeout":
			killed++
			counted++
		case "survived":
			counted++
		}
		by := ""
		if r.verdict == "killed" {
			by = strings.ReplaceAll(r.detail, "|", "/")
		}
		fmt.Printf("| %d | %s | %s | %s | `%s` | %s | %s | %s |\n", i+1, r.m.ID, r.m.File, r.m.Why, r.m.Test, r.verdict, by,
			r.dur.Round(time.Second))
	}
	if counted > 0 {
		fmt.Printf("\nKilled %d of %d (%.0f %%).\n", killed, counted, 100*float64(killed)/float64(counted))
	}
	for _, r := range results {
		if r.verdict != "killed" && r.detail != "" {
			fmt.Printf("\n%s (%s): %s\n", r.m.ID, r.verdict, r.detail)
		}
	}
	if killed != counted {
		if !*keep {
			os.RemoveAll(scratch) // os.Exit skips the deferred removal
		}
		os.Exit(1)
	}
}

// apply writes m into the scratch tree, checks it still compiles, runs its
// test and restores the file.
func apply(scratch string, m mutation, limit time.Duration, baseline string) (verdict, detail string) {
	if baseline != "" {
		return "baseline-fails", "the test fails without the mutation: " + baseline
	}
	path := filepath.Join(scratch, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "invalid", err.Error()
	}
	if n := bytes.Count(orig, []byte(m.Old)); n != 1 {
		return "invalid", fmt.Sprintf("%s: the text to replace occurs %d times, not once: %q", m.File, n, m.Old)
	}
	defer os.WriteFile(path, orig, 0o644) //nolint:errcheck // restored for the next mutation
	if err := os.WriteFile(path, bytes.Replace(orig, []byte(m.Old), []byte(m.New), 1), 0o644); err != nil {
		return "invalid", err.Error()
	}
	pkg := "./" + filepath.Dir(m.File) + "/"
	if code, out, _ := runTest(scratch, "go vet "+pkg, limit); code != 0 {
		return "invalid", "does not compile: " + lastLines(out, 5)
	}
	code, out, timedOut := runTest(scratch, m.Test, limit)
	switch {
	case timedOut:
		return "timeout", lastLines(out, 3)
	case code != 0:
		return "killed", caughtBy(out)
	}
	return "survived", lastLines(out, 3)
}

// runTest runs cmd in dir under a time limit, in its own process group so
// a timeout ends the test binaries too.
func runTest(dir, cmd string, limit time.Duration) (code int, out string, timedOut bool) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-c", cmd)
	c.Dir = dir
	var b bytes.Buffer
	c.Stdout, c.Stderr = &b, &b
	setGroup(c)
	err := c.Run()
	if ctx.Err() != nil {
		return -1, b.String(), true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), b.String(), false
	}
	if err != nil {
		return -1, err.Error(), false
	}
	return 0, b.String(), false
}

var (
	goFail     = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	ginkgoFail = regexp.MustCompile(`(?m)^\s*\[FAIL\] (.+?)\s*$`)
)

// caughtBy names the tests that failed (Ginkgo's specs rather than go
// test's TestE2E), so the table shows a mutation was caught for the right
// reason.
func caughtBy(out string) string {
	var names []string
	for _, re := range []*regexp.Regexp{ginkgoFail, goFail} {
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			if !slices.Contains(names, m[1]) {
				names = append(names, m[1])
			}
		}
		if len(names) > 0 {
			break
		}
	}
	if len(names) == 0 {
		return "(no failing test named: " + lastLines(out, 2) + ")"
	}
	if len(names) > 3 {
		names = append(names[:3], "...")
	}
	return strings.Join(names, ", ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

func output(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutate: "+format+"\n", args...)
	os.Exit(2)
}
