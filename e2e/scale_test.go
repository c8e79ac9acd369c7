package e2e

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/spec"
)

var _ = Describe("walks by role", Label("pod-networking", "scale"), func() {
	It("hold on another address plan: a generated 10.0.0.0/16 lab whose pods spill onto secondary ENIs", func() {
		name := labPrefix + "gen"
		t, err := spec.Generate(name, 4, 40, 2) // 40 pods per node: eth0 and eth1
		Expect(err).NotTo(HaveOccurred())
		_, err = lab.Up(context.Background(), t, lab.UpOptions{})
		DeferCleanup(func() {
			_, _ = lab.Down(name)
			expectNothingLeft(name)
		})
		Expect(err).NotTo(HaveOccurred())
		s, err := lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		defer s.Close()
		rep, err := s.State()
		Expect(err).NotTo(HaveOccurred())
		Expect(rep.Passed()).To(BeTrue())
		// Nodes alternate AZs, so n0 and n3 sit in different subnets: the
		// cross-node walk is routed, from a primary-ENI pod to a secondary-ENI pod.
		for _, w := range t.Walks {
			run := walkOnce(s, w.Name)
			Expect(run.Report.Passed()).To(BeTrue(), describe(run.Report))
		}
	})
})
