package e2e

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// natHops are the sources a walk's packets had at the NAT gateway's ENI:
// "request in", "request out", "reply in", "reply out".
func natHops(r *walk.Report) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	for _, h := range r.Hops {
		if h.Point != (walk.Point{Object: "nat-a", Iface: "eth0"}) {
			continue
		}
		Expect(h.Verdict).To(Equal(walk.OK), describe(r))
		Expect(h.Seen).NotTo(BeNil(), describe(r))
		out[string(h.Leg)+" "+string(h.Dir)] = h.Seen.Src.String() + " > " + h.Seen.Dst.String()
	}
	Expect(out).To(HaveLen(4), "the NAT gateway's ENI must be captured both ways on both legs:\n%s", describe(r))
	return out
}

var _ = Describe("private-subnets (walks D3)", Ordered, Label("internet", "natgw"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("private-subnets", labPrefix+"natgw") })

	It("D3: SNAT at the node, then at the NAT gateway, then the gateway's Elastic IP; the server sees only that", func() {
		run := passes(s, "D3")
		Expect(run.App.Remote).To(HavePrefix("203.0.113.10:"))
		Expect(natHops(run.Report)).To(Equal(map[string]string{
			"request in":  "192.168.1.11 > 198.51.100.10", // node11's primary IP: the VPC CNI's SNAT
			"request out": "192.168.0.10 > 198.51.100.10", // the NAT gateway's private IP
			"reply in":    "198.51.100.10 > 192.168.0.10",
			"reply out":   "198.51.100.10 > 192.168.1.11",
		}))
	})

	It("D3-external: with external SNAT the NAT gateway receives and translates the pod IP", func() {
		run := passes(s, "D3-external")
		Expect(run.App.Remote).To(HavePrefix("203.0.113.10:"))
		hops := natHops(run.Report)
		Expect(hops["request in"]).To(Equal("192.168.1.22 > 198.51.100.10"))
		Expect(hops["reply out"]).To(Equal("198.51.100.10 > 192.168.1.22"))
	})

	It("D3-exclude: a destination in AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS leaves the node with the pod IP", func() {
		run := passes(s, "D3-exclude")
		Expect(run.App.Remote).To(HavePrefix("203.0.113.10:"))
		Expect(natHops(run.Report)["request in"]).To(Equal("192.168.1.32 > 198.51.100.10"))
	})

	It("a subnet whose route table has no default route: the router drops its internet traffic", func() {
		passes(s, "D3-isolated")
	})

	// Each fault fails D3 at its own hop: the router's way to the NAT
	// gateway, or the router's way from it to the internet gateway.
	for fname, point := range map[string]walk.Point{
		"nat-route-missing": {Object: spec.RouterName, Iface: spec.BridgeName("public-a")},
		"natgw-without-igw": {Object: spec.RouterName, Iface: "igw"},
	} {
		It(fname+" breaks D3 at "+point.String()+", and clearing it repairs D3", func() {
			_, err := fault.Inject(s, fname)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(func() { _, _ = fault.Clear(s) })
			broken := walkOnce(s, "D3")
			Expect(broken.Passed()).To(BeFalse())
			first := broken.Report.FirstFailure()
			Expect(first).NotTo(BeNil())
			Expect(first.Point).To(Equal(point), describe(broken.Report))
			Expect(first.Verdict).To(Equal(walk.Missing), describe(broken.Report))
			_, err = fault.Clear(s)
			Expect(err).NotTo(HaveOccurred())
			passes(s, "D3")
		})
	}
})
