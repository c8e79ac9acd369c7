package e2e

import (
	"context"
	"sort"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// Each fault breaks its walk at the hop where the fault is, and the walk
// passes again once the fault is cleared. One lab per topology.
var _ = Describe("faults", Ordered, Label("faults"), func() {
	byTopology := map[string][]string{}
	for _, name := range lab.FaultNames() {
		f := lab.Faults[name]
		byTopology[f.Topology] = append(byTopology[f.Topology], name)
	}
	topologies := make([]string, 0, len(byTopology))
	for t := range byTopology {
		topologies = append(topologies, t)
	}
	sort.Strings(topologies)
	for _, topo := range topologies {
		Context("on "+topo, Ordered, func() {
			var s *lab.Session
			BeforeAll(func() { s = session(topo, labPrefix+"f-"+topo) })
			for _, name := range byTopology[topo] {
				f := lab.Faults[name]
				It(name+" breaks walk "+f.Walk+" at "+f.Object+", and clearing it repairs the walk", func() {
					before := walkOnce(s, f.Walk)
					Expect(before.Passed()).To(BeTrue(), "the walk must pass before the fault")
					_, err := fault.Inject(s, name)
					Expect(err).NotTo(HaveOccurred())
					broken := walkOnce(s, f.Walk)
					Expect(broken.Passed()).To(BeFalse(), "the fault did not break %s", f.Walk)
					first := broken.Report.FirstFailure()
					Expect(first).NotTo(BeNil())
					Expect(first.Point.Object).To(BeElementOf(append([]string{f.Object}, f.Also...)), describe(broken.Report))
					Expect(first.Verdict).To(BeElementOf(walk.Missing, walk.Mismatch, walk.Unexpected))
					cleared, err := fault.Clear(s)
					Expect(err).NotTo(HaveOccurred())
					Expect(cleared).To(Equal([]string{name}))
					Eventually(func() bool { return walkOnce(s, f.Walk).Passed() }, "30s", "200ms").Should(BeTrue(),
						"the walk must pass again once %s is cleared", name)
				})
			}
		})
	}
})

var _ = Describe("fault clear and exercises", Ordered, Label("faults"), func() {
	It("clears a fault the user already repaired by hand", func() {
		s := session("pod-networking", labPrefix+"fhand")
		_, err := fault.Inject(s, "missing-1536")
		Expect(err).NotTo(HaveOccurred())
		out, code := run(nil, "exec", "--lab", labPrefix+"fhand", "node81", "--", "ip", "rule", "add", "from", "192.168.1.81",
			"lookup", "2", "pref", "1536")
		Expect(code).To(Equal(0), out)
		_, err = fault.Clear(s)
		Expect(err).NotTo(HaveOccurred())
		passes(s, "A3")
	})

	It("keeps an exercise's fault hidden: fault clear refuses, exercise check follows the user's own fix", func() {
		e, err := lab.ExerciseByTicket(exerciseFor("missing-1536"))
		Expect(err).NotTo(HaveOccurred())
		t, err := spec.Load(topology("pod-networking"))
		Expect(err).NotTo(HaveOccurred())
		// Not ex-<ticket>: a user's own exercise lab of that name stays untouched.
		name, err := lab.StartExerciseAs(context.Background(), t, e, labPrefix+"ex")
		DeferCleanup(func() { _, _ = lab.Down(labPrefix + "ex"); expectNothingLeft(labPrefix + "ex") })
		Expect(err).NotTo(HaveOccurred())
		Expect(name).To(Equal(labPrefix + "ex"))
		out, code := run(nil, "fault", "clear", "--lab", name)
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("is an exercise"))
		dir := GinkgoT().TempDir()
		out, code = run(nil, "exercise", "check", "--lab", name, "--captures-dir", dir)
		Expect(code).To(Equal(1), out)
		Expect(out).To(ContainSubstring("not fixed yet"))
		out, code = run(nil, "exec", "--lab", name, "node81", "--", "ip", "rule", "add", "from", "192.168.1.81", "lookup", "2", "pref", "1536")
		Expect(code).To(Equal(0), out)
		out, code = run(nil, "exercise", "check", "--lab", name, "--captures-dir", dir)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("fixed"))
	})
})

func exerciseFor(fault string) string {
	for _, e := range lab.Exercises() {
		if e.Fault == fault {
			return e.Ticket
		}
	}
	return ""
}
