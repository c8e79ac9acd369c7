package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
)

var _ = Describe("pod-egress (walk D2)", Ordered, Label("internet"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("pod-egress", labPrefix+"egress") })

	It("D2: the server sees the node's Elastic IP, never the pod's or the node's private address", func() {
		run := passes(s, "D2")
		Expect(run.App.Remote).To(HavePrefix("203.0.113.50:"))
	})

	It("D2 from a secondary-ENI pod leaves through eth0 and shows its node's Elastic IP", func() {
		run := passes(s, "D2-secondary")
		Expect(run.App.Remote).To(HavePrefix("203.0.113.80:"))
	})

	It("D2 with ICMP passes too", func() { passes(s, "D2-icmp") })

	It("a node without an Elastic IP gets no internet: the gateway drops the flow", func() { passes(s, "D2-no-eip") })
})
