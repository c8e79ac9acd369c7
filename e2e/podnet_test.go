package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// describe renders a walk report for a failure message.
func describe(r *walk.Report) string {
	var b strings.Builder
	for _, h := range append(r.Hops, r.Unexpected...) {
		seen := "-"
		if h.Seen != nil {
			seen = h.Seen.Summary()
		}
		fmt.Fprintf(&b, "%s %s %s: %s [%s]\n", h.Leg, h.Point, h.Dir, seen, h.Verdict)
	}
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	return b.String()
}

func walkOnce(s *lab.Session, name string) *lab.Run {
	GinkgoHelper()
	w := s.Topo.Walk(name)
	Expect(w).NotTo(BeNil(), "walk "+name)
	run, err := s.Walk(*w, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	return run
}

var _ = Describe("pod-networking (walks A0-A4)", Ordered, Label("pod-networking"), func() {
	const name = labPrefix + "podnet"
	var s *lab.Session

	BeforeAll(func() {
		up("pod-networking", name)
		var err error
		s, err = lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
	})

	It("A0: the kernel holds the VPC CNI's pod and node plumbing", func() {
		rep, err := s.State()
		Expect(err).NotTo(HaveOccurred())
		for _, c := range rep.Checks {
			Expect(c.OK).To(BeTrue(), "%s: %s (kernel has %s)", c.Object, c.What, c.Got)
		}
		Expect(len(rep.Checks)).To(BeNumerically(">", 30))
	})

	for _, w := range []string{"A1", "A1-tcp", "A2", "A3", "A3-tcp", "A4", "A4-subnet"} {
		It(fmt.Sprintf("walk %s: every hop shows the expected MACs and addresses, and nothing strays", w), func() {
			run := walkOnce(s, w)
			Expect(run.TrafficErr).NotTo(HaveOccurred())
			Expect(run.Report.Passed()).To(BeTrue(), describe(run.Report))
		})
	}

	It("A3: the router's IP layer carries the reply and not the request", func() {
		run := walkOnce(s, "A3")
		Expect(run.Report.Passed()).To(BeTrue(), describe(run.Report))
		var legs []walk.Leg
		for _, h := range run.Report.Hops {
			if h.Point == (walk.Point{Object: spec.RouterName, Iface: "br-a"}) {
				Expect(h.Seen).NotTo(BeNil())
				legs = append(legs, h.Leg)
			}
		}
		Expect(legs).To(Equal([]walk.Leg{walk.Reply, walk.Reply}))
	})

	It("A2 over TCP: the receiving pod's app saw the sender's own pod IP (no NAT)", func() {
		run := walkOnce(s, "A2")
		Expect(run.App).NotTo(BeNil())
		Expect(run.App.Object).To(Equal("pod71"))
		Expect(run.App.Remote).To(HavePrefix("192.168.1.51:"))
	})

	It("a walk fails at the hop where the data path breaks, and passes again once repaired", func() {
		// Without rule 1536, pod81's reply routes by main and leaves eth0 on-link.
		out, code := run(nil, "exec", "--lab", name, "node81", "--", "ip", "rule", "del", "pref", "1536")
		Expect(code).To(Equal(0), out)
		broken := walkOnce(s, "A3")
		Expect(broken.Report.Passed()).To(BeFalse())
		f := broken.Report.FirstFailure()
		Expect(f.Leg).To(Equal(walk.Reply))
		Expect(f.Point).To(Equal(walk.Point{Object: "node81", Iface: "eth1"}), describe(broken.Report))
		Expect(f.Verdict).To(Equal(walk.Missing))

		out, code = run(nil, "exec", "--lab", name, "node81", "--", "ip", "rule", "add", "from", "192.168.1.81",
			"lookup", "2", "pref", "1536")
		Expect(code).To(Equal(0), out)
		fixed := walkOnce(s, "A3")
		Expect(fixed.Report.Passed()).To(BeTrue(), describe(fixed.Report))
	})

	It("labctl walk prints every hop, exits 0, and writes pcapng files tcpdump and tshark read", func() {
		dir := GinkgoT().TempDir()
		out, code := run(nil, "walk", "--lab", name, "--captures-dir", dir)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("8 passed, 0 failed"))
		Expect(out).To(ContainSubstring("PASS A3"))
		files, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
		Expect(files).To(HaveLen(7)) // A0 reads state and captures nothing
		for _, f := range files {
			b, err := exec.Command("tcpdump", "-nn", "-r", f).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), string(b))
			b, err = exec.Command("tshark", "-r", f, "-Y", `frame.comment contains "labctl: reply"`).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), string(b))
			Expect(string(b)).NotTo(BeEmpty())
		}
	})

	It("labctl exec runs a command in a pod's namespace", func() {
		out, code := run(nil, "exec", "--lab", name, "pod61", "--", "ip", "-4", "route")
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("default via 169.254.1.1 dev eth0"))
	})
})

var _ = Describe("two labs at once", Label("lifecycle"), func() {
	It("runs two copies of one topology, with the same addresses, side by side", func() {
		a, b := labPrefix+"twin-a", labPrefix+"twin-b"
		up("pod-networking", a)
		up("pod-networking", b)
		for _, l := range []string{a, b} {
			s, err := lab.OpenSession(l)
			Expect(err).NotTo(HaveOccurred())
			run := walkOnce(s, "A3-tcp")
			s.Close()
			Expect(run.Report.Passed()).To(BeTrue(), describe(run.Report))
		}
		// A user with no current lab (a uid of its own: other specs' ups set
		// the suite's): two labs up are ambiguous.
		out, code := run([]string{"SUDO_UID=2147000003"}, "walk", "A1")
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("say which with --lab"))
	})
})

var _ = Describe("prefix-delegation", Ordered, Label("pod-networking"), func() {
	It("pods carved from /28 prefixes get the same plumbing and walks as secondary-IP pods", func() {
		s := session("prefix-delegation", labPrefix+"pd")
		rep, err := s.State()
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Passed()).To(BeTrue())
		for _, w := range []string{"A1", "A3", "A4"} {
			passes(s, w)
		}
		out, err := inNS(labPrefix+"pd", "node51", "ip", "route", "show", "table", "all")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).NotTo(ContainSubstring("/28"), "no /28 route exists anywhere on the node")
	})
})
