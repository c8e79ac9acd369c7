package e2e

import (
	"net"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/walk"
)

// replay is the real capture of a passed ICMP walk, one packet per hop as
// the kernel sent it, and a classifier for it.
func replay(run *lab.Run) ([]walk.Packet, *walk.Classifier) {
	GinkgoHelper()
	var pkts []walk.Packet
	for _, h := range run.Report.Hops {
		Expect(h.Seen).NotTo(BeNil(), "hop %s %s has no packet", h.Point, h.Dir)
		pkts = append(pkts, *h.Seen)
	}
	Expect(pkts).NotTo(BeEmpty())
	return pkts, &walk.Classifier{Proto: "icmp", Token: pkts[0].Payload}
}

// The unit tests prove the checker on made-up packets; these prove it on a
// real capture of walk A3: replayed unchanged it passes, and the very same
// kernel packets fail it when the expectation names another MAC at one hop
// or when one of them also shows up on an interface no hop passes.
var _ = Describe("the walk checker on a real capture", Ordered, Label("pod-networking", "checker"), func() {
	var run *lab.Run
	BeforeAll(func() {
		s := session("pod-networking", labPrefix+"replay")
		run = passes(s, "A3")
	})

	It("passes A3's own capture replayed", func() {
		pkts, c := replay(run)
		r := walk.Check(run.Report.Expectation, c, pkts)
		Expect(r.Passed()).To(BeTrue(), describe(r))
	})

	It("fails A3's capture against an expectation with another MAC at one hop", func() {
		pkts, c := replay(run)
		e := *run.Report.Expectation
		e.Hops = append([]walk.Hop(nil), e.Hops...)
		i := len(e.Hops) / 2
		e.Hops[i].DstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0xde, 0xad}
		r := walk.Check(&e, c, pkts)
		Expect(r.Passed()).To(BeFalse(), "a real packet with another dst MAC than the hop's passed")
		Expect(r.FirstFailure().Describe()).To(ContainSubstring("dst MAC"))
	})

	It("fails A3's capture when one of its packets also shows up off the path", func() {
		pkts, c := replay(run)
		e := run.Report.Expectation
		on := map[walk.Point]bool{}
		for _, h := range e.Hops {
			on[h.Point] = true
		}
		var off *walk.Point
		for i := range e.Points {
			if !on[e.Points[i]] {
				off = &e.Points[i]
				break
			}
		}
		Expect(off).NotTo(BeNil(), "A3 listens nowhere off its path")
		stray := pkts[0]
		stray.Point = *off
		r := walk.Check(e, c, append(pkts, stray))
		Expect(r.Passed()).To(BeFalse(), "the flow on %s, off A3's path, passed", *off)
		Expect(r.Unexpected).NotTo(BeEmpty())
	})
})
