package e2e

import (
	"os/exec"
	"strings"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/spec"
)

func explained(run *lab.Run) string {
	var b strings.Builder
	for _, lines := range run.Explain {
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var _ = Describe("walk --explain", Ordered, Label("explain"), func() {
	It("reads A3's reply decision from the kernel: rule 1536, table 2's default route, the router's neighbour entry", func() {
		s := session("pod-networking", labPrefix+"xa3")
		s.Explain = true
		run := passes(s, "A3")
		text := explained(run)
		Expect(text).To(ContainSubstring("node81: rule 1536: from 192.168.1.81 lookup 2 -> default via 192.168.1.1 dev eth1"))
		Expect(text).To(ContainSubstring("node81: neighbour 192.168.1.1 lladdr 0e:0d:59:99:72:b4"))
		Expect(text).To(ContainSubstring("pod51: neighbour 169.254.1.1 lladdr 06:2c:03:2e:df:06 PERMANENT on eth0"))
		Expect(text).NotTo(ContainSubstring("reported no trace"))
	})

	It("traces B3's NodePort through kube-proxy's chains on node51, with the DNAT, the masquerade and the conntrack entry", func() {
		s := session("nodeport", labPrefix+"xb3")
		s.Explain = true
		run := passes(s, "B3")
		text := explained(run)
		Expect(text).To(ContainSubstring("node51: iptables nat:KUBE-NODEPORTS JUMP KUBE-EXT-"))
		Expect(text).To(ContainSubstring("-j DNAT --to-destination 192.168.1.71:80"))
		Expect(text).To(ContainSubstring("-j MASQUERADE --random-fully"))
		Expect(text).To(MatchRegexp(`node51: conntrack tcp src=192\.168\.2\.10 dst=192\.168\.1\.50 sport=\d+ dport=30080 src=192\.168\.1\.71`))
		Expect(text).NotTo(ContainSubstring("reported no trace"))
	})

	It("a walk --explain killed with its TRACE rules in leaves no xtables-monitor running, and the next labctl status removes its TRACE rules", func() {
		name := labPrefix + "xkill"
		up("pod-networking", name)
		objs := []string{"node51", "node71", "node81", "vpc"}
		rules := func() (n int) {
			for _, o := range objs {
				out, err := exec.Command("ip", "netns", "exec", spec.NSName(name, o), "iptables-save", "-t", "raw").CombinedOutput()
				Expect(err).NotTo(HaveOccurred(), string(out))
				n += strings.Count(string(out), "-j TRACE")
			}
			return n
		}
		_, st := runState([]string{"LABCTL_FAULT_AT=walk-traced"}, "walk", "--lab", name, "-x", "--captures-dir", GinkgoT().TempDir(), "A3")
		Expect(st.Sys().(syscall.WaitStatus).Signal()).To(Equal(syscall.SIGKILL))
		Expect(rules()).To(BeNumerically(">", 0), "the killed walk left no TRACE rule: the spec proves nothing")
		// Each monitor got its SIGKILL (PR_SET_PDEATHSIG) as labctl died.
		expectDyingThenGone(processesIn(name, "xtables-monitor", objs...), "xtables-monitor")
		out, code := run(nil, "status", "--lab", name)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("removed the TRACE rules"))
		Expect(rules()).To(BeZero(), "TRACE rules left after status")
		Expect(processesIn(name, "xtables-monitor", objs...)).To(BeEmpty(), "xtables-monitor left after status")
	})

	It("on ticket-105's fault, names where A3 stopped: node51's neighbour entry for pod81 unresolved and its unanswered ARP", func() {
		s := session("pod-networking", labPrefix+"x105")
		_, err := fault.Inject(s, "secondary-ip-unassigned")
		Expect(err).NotTo(HaveOccurred())
		s.Explain = true
		run := walkOnce(s, "A3")
		Expect(run.Passed()).To(BeFalse())
		notes := strings.Join(run.Report.Notes, "\n")
		Expect(notes).To(ContainSubstring("where it stopped: last seen at node51/"))
		Expect(notes).To(ContainSubstring("the next hop, node51/eth0 out, never happened"))
		Expect(notes).To(MatchRegexp(`node51: neighbour 192\.168\.1\.81 lladdr \(none\) (FAILED|INCOMPLETE)`))
		Expect(notes).To(MatchRegexp(`node51: \d+ ARP requests for 192\.168\.1\.81 on eth0, none answered`))
	})
})
