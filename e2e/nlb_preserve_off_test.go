package e2e

import (
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/walk"
)

// nlbInstanceSNAT is topologies/nlb-instance.yaml with the target group
// attribute preserve_client_ip.enabled=false, the fix AWS documents for the
// hairpin ("Client IP preservation", Network Load Balancer target groups),
// and C1-hairpin expected to work.
func nlbInstanceSNAT() string {
	GinkgoHelper()
	b, err := os.ReadFile(topology("nlb-instance"))
	Expect(err).NotTo(HaveOccurred())
	s := string(b)
	for old, repl := range map[string]string{
		"    service.beta.kubernetes.io/aws-load-balancer-scheme: internal\n": "    service.beta.kubernetes.io/aws-load-balancer-scheme: internal\n" +
			"    service.beta.kubernetes.io/aws-load-balancer-target-group-attributes: preserve_client_ip.enabled=false\n",
		"    expect: drop\n": "",
	} {
		Expect(strings.Count(s, old)).To(Equal(1), "nlb-instance.yaml changed: %q", old)
		s = strings.Replace(s, old, repl, 1)
	}
	file := filepath.Join(GinkgoT().TempDir(), "nlb-instance-snat.yaml")
	Expect(os.WriteFile(file, []byte(s), 0o644)).To(Succeed())
	return file
}

var _ = Describe("nlb-instance with preserve_client_ip.enabled=false", Ordered, Label("lb"), func() {
	var s *lab.Session
	BeforeAll(func() {
		name := labPrefix + "nlbsnat"
		upFile(nlbInstanceSNAT(), name)
		var err error
		s, err = lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
	})

	It("C1-b: the target node receives the request from the NLB node's own address, not the client's", func() {
		run := passes(s, "C1-b")
		var seen *walk.HopResult
		for i, h := range run.Report.Hops {
			if h.Leg == walk.Request && h.Point == (walk.Point{Object: "node71", Iface: "eth0"}) && h.Dir == walk.In {
				seen = &run.Report.Hops[i]
			}
		}
		Expect(seen).NotTo(BeNil(), "no request hop into node71/eth0")
		Expect(seen.Seen).NotTo(BeNil())
		Expect(seen.Seen.Src.String()).To(HavePrefix("192.168.102."), "node71 sees the NLB node in us-east-1b")
	})

	It("C1-hairpin: pod71 reaches its own Service through the NLB; the SNAT removes the hairpin", func() {
		run := passes(s, "C1-hairpin")
		Expect(run.App).NotTo(BeNil())
		Expect(run.App.Object).To(Equal("pod71"))
	})
})
