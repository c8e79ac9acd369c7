package e2e

import (
	"fmt"
	"math"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/walk"
)

// spreadOf runs a spread walk of the lab and returns its outcome.
func spreadOf(s *lab.Session, name string) *lab.Run {
	GinkgoHelper()
	run := walkOnce(s, name)
	Expect(run.Spread).NotTo(BeNil(), name+" is a spread walk")
	Expect(run.Spread.Failures).To(BeZero(), fmt.Sprint(run.Spread.LastErr))
	return run
}

// The talk's closing advice, measured: one az-local lab (three AZs, the
// client pod on node-a1 in us-east-1a) shared by every spec.
var _ = Describe("az-local (keeping traffic in its AZ)", Ordered, Label("services", "spread", "azlocal"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("az-local", labPrefix+"azl") })

	It("with PreferClose, 100 requests to a Service with an endpoint in every AZ cross an AZ 0 times", func() {
		run := passes(s, "AZ2-preferclose")
		sp := run.Spread
		Expect(sp.Answered()).To(Equal(100))
		Expect(sp.CrossedRequests).To(BeZero())
		Expect(sp.CrossAZ.Bytes).To(BeZero(), "no byte of the requests' connections crossed: %v", sp.CrossAZ.Crossings)
		azs := map[string]bool{}
		for _, e := range sp.Endpoints {
			azs[e.AZ] = true
		}
		Expect(azs).To(HaveLen(3), "the Service has an endpoint in every AZ")
	})

	It("without it, the share that crosses is printed and close to (AZs-1)/AZs", func() {
		run := passes(s, "AZ1-cluster")
		sp := run.Spread
		const azs = 3
		p := float64(azs-1) / azs
		n := float64(sp.Answered())
		// 4.5 standard deviations of a binomial(n, p) either side: a fair
		// kube-proxy falls outside with probability below 1e-5.
		band := 4.5 * math.Sqrt(n*p*(1-p))
		GinkgoWriter.Printf("without topology: %d of %.0f requests crossed an AZ (%.0f%%; (AZs-1)/AZs is %.0f%%), %d bytes, $%.2f a month at %d requests/s\n",
			sp.CrossedRequests, n, 100*sp.CrossShare(), 100*p, sp.CrossAZ.Bytes, sp.MonthlyCost(), walk.SpreadRequestRate)
		Expect(float64(sp.CrossedRequests)).To(BeNumerically("~", n*p, band))
		Expect(sp.CrossAZ.Bytes).To(BeNumerically(">", 0))
	})

	It("internalTrafficPolicy Local keeps a pod's requests on its node", func() {
		run := passes(s, "AZ7-itp-local")
		sp := run.Spread
		for _, e := range sp.Endpoints {
			if e.Node == "node-a1" {
				Expect(sp.Counts[e.Pod]).To(Equal(100), "every request answered by the client node's own pod")
			} else {
				Expect(sp.Counts[e.Pod]).To(BeZero(), "%s on %s answered", e.Pod, e.Node)
			}
		}
		Expect(sp.CrossAZ.Packets).To(BeZero())
	})

	It("every az-local walk passes; side by side, what crosses an AZ with and without each feature", func() {
		for _, w := range s.Topo.Walks {
			run := spreadOf(s, w.Name)
			Expect(run.Passed()).To(BeTrue(), fmt.Sprintf("%s: %+v", w.Name, run.Spread))
			sp := run.Spread
			GinkgoWriter.Printf("%-26s %3d/%3d requests crossed (%3.0f%%) %7d bytes  $%6.2f/month at %d req/s\n", w.Name,
				sp.CrossedRequests, sp.Answered(), 100*sp.CrossShare(), sp.CrossAZ.Bytes, sp.MonthlyCost(), walk.SpreadRequestRate)
		}
	})
})
