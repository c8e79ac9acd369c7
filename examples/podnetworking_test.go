package examples

import (
	"context"
	"errors"
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
)

var _ = Describe("the secondary-ENI walk of pod-networking, through the public API", Ordered, func() {
	var l *lab.Lab

	BeforeAll(func() {
		if os.Geteuid() != 0 {
			Skip("labs need root (network namespaces)")
		}
		t, err := spec.Load("../topologies/pod-networking.yaml")
		Expect(err).NotTo(HaveOccurred())
		l, err = lab.Start(context.Background(), t, lab.UpOptions{Name: "example-pn"})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() {
			_, err := l.Down()
			Expect(err).NotTo(HaveOccurred())
			_, err = lab.ReadState("example-pn")
			Expect(errors.Is(err, lab.ErrNotUp)).To(BeTrue(), "after Down the lab is not up")
		})
	})

	It("passes A3, the reply leaving by the router, every hop proved by captured packets", func() {
		r, err := l.Walk("A3", GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Passed()).To(BeTrue(), "%v", r.Report.FirstFailure())
		Expect(r.Pcap).To(BeAnExistingFile())
		Expect(len(r.Report.Hops)).To(BeNumerically(">", 4))
	})

	It("fails A3 at node81 once node81 lost rule 1536, and passes again when it is repaired", func() {
		Expect(l.InjectFault("missing-1536")).To(Succeed())
		r, err := l.Walk("A3", GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Passed()).To(BeFalse())
		Expect(r.Report.FirstFailure().Point.Object).To(Equal("node81"))

		Expect(l.ClearFaults()).To(Succeed())
		r, err = l.Walk("A3", GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		Expect(r.Passed()).To(BeTrue(), "%v", r.Report.FirstFailure())
	})

	It("names a walk the topology does not have with ErrNoWalk", func() {
		_, err := l.Walk("Z9", GinkgoT().TempDir())
		Expect(errors.Is(err, lab.ErrNoWalk)).To(BeTrue(), "%v", err)
	})
})
