package e2e

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// chiSquareUniform is Pearson's statistic of counts against an even split.
func chiSquareUniform(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	want := float64(total) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		x += (float64(c) - want) * (float64(c) - want) / want
	}
	return x
}

// kube-proxy's KUBE-SVC chain gives each of n endpoints 1/n of new
// connections (probabilities 1/n, 1/(n-1), ..., then the rest). B1-spread
// only checks that every endpoint answered; this checks the split itself:
// 1200 connections over three endpoints, Pearson's chi-square against an
// even split below 20 (2 degrees of freedom: a fair split exceeds it with
// probability 5e-5). A chain with 1/3 on every rule splits 1/3, 2/9, 4/9:
// its expected statistic is about 90.
var _ = Describe("clusterip spread (kube-proxy's statistic probabilities)", Ordered, Label("services", "spread"), func() {
	It("B1-spread with 1200 connections splits them evenly over the three endpoints", func() {
		s := session("clusterip", labPrefix+"split")
		w := *s.Topo.Walk("B1-spread")
		w.Connections = 1200
		run, err := s.Walk(w, GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred())
		Expect(run.Spread).NotTo(BeNil())
		Expect(run.Spread.Failures).To(BeZero(), fmt.Sprint(run.Spread.LastErr))
		Expect(run.Spread.Endpoints).To(HaveLen(3))
		var counts []int
		for _, e := range run.Spread.Endpoints {
			counts = append(counts, run.Spread.Counts[e.Pod])
		}
		x := chiSquareUniform(counts)
		GinkgoWriter.Printf("split %v, chi-square %.1f\n", counts, x)
		Expect(x).To(BeNumerically("<", 20), "connections per endpoint %v are not an even split (chi-square %.1f)", counts, x)
	})
})
