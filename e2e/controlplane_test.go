package e2e

import (
	"os"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/pki"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/lab/walk"
)

// lastRequestHop is where a walk's request ended: the server's interface.
func lastRequestHop(r *walk.Report) walk.HopResult {
	GinkgoHelper()
	var last walk.HopResult
	for _, h := range r.Hops {
		if h.Leg == walk.Request {
			last = h
		}
	}
	Expect(last.Seen).NotTo(BeNil(), describe(r))
	return last
}

// curlEndpoint asks the cluster endpoint's /version from an object's
// namespace with curl, trusting only the lab CA, and returns the address
// curl connected to and the body.
func curlEndpoint(name, object string, t *spec.Topology) (remote, body string) {
	GinkgoHelper()
	out, err := inNS(name, object, "curl", "-sS", "-m", "5", "--cacert", state.Path(name, pki.CACert),
		"-w", "\nremote=%{remote_ip}", "https://"+t.EndpointName()+"/version")
	Expect(err).NotTo(HaveOccurred(), out)
	body, remote, _ = strings.Cut(out, "\nremote=")
	return strings.TrimSpace(remote), body
}

var _ = Describe("control-plane (walks CP1-CP3)", Ordered, Label("internet", "control-plane"), func() {
	const name = labPrefix + "cp"
	var s *lab.Session
	BeforeAll(func() { s = session("control-plane", name) })

	It("CP1: a node reaches the API server at the X-ENI in its AZ over the private endpoint", func() {
		run := passes(s, "CP1")
		last := lastRequestHop(run.Report)
		Expect(last.Point).To(Equal(walk.Point{Object: "eks-api-0", Iface: "eth1"}))
		Expect(last.Seen.Dst.String()).To(Equal("192.168.1.100"))
		Expect(strings.Join(run.Report.Notes, "\n")).To(ContainSubstring("eks-api-0 saw the client as 192.168.1.11:"))
	})

	It("CP2: the internet reaches the public endpoint through the internet gateway and the NLB; the API server sees the client", func() {
		run := passes(s, "CP2")
		last := lastRequestHop(run.Report)
		Expect(last.Point).To(Equal(walk.Point{Object: "eks-api-0", Iface: "eth0"}))
		Expect(last.Seen.Src.String()).To(Equal("198.51.100.10"), "the NLB keeps the client's address")
	})

	It("CP3: the API server calls a kubelet through its X-ENI, and the node sees the X-ENI's address", func() {
		run := passes(s, "CP3")
		Expect(run.Report.Hops[0].Point).To(Equal(walk.Point{Object: "eks-api-1", Iface: "eth1"}))
		last := lastRequestHop(run.Report)
		Expect(last.Point).To(Equal(walk.Point{Object: "node11", Iface: "eth0"}))
		Expect(last.Seen.Src.String()).To(Equal("192.168.11.100"))
		Expect(strings.Join(run.Report.Notes, "\n")).To(ContainSubstring("node11 saw the client as 192.168.11.100:"))
	})

	It("curl --cacert <lab CA> answers /version through an X-ENI from a node and through the NLB from the internet", func() {
		remote, body := curlEndpoint(name, "node21", s.Topo)
		Expect(remote).To(BeElementOf("192.168.1.100", "192.168.11.100"), "a node's answer comes from an X-ENI")
		Expect(body).To(ContainSubstring(`"gitVersion": "v1.33.5-eks-labctl"`))
		remote, body = curlEndpoint(name, "laptop", s.Topo)
		Expect(remote).To(BeElementOf("203.0.113.200", "203.0.113.199"), "the internet's answer comes from the NLB")
		Expect(body).To(ContainSubstring(`"major": "1"`))
	})

	It("keeps the lab CA's key and the serving keys readable by root only", func() {
		for _, f := range []string{pki.CAKey, pki.APIServerKey, pki.KubeletKey, pki.CACert} {
			st, err := os.Stat(state.Path(name, f))
			Expect(err).NotTo(HaveOccurred())
			Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o600)), f)
		}
		st, err := os.Stat(state.Dir(name))
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o700)))
	})
})

var _ = Describe("control-plane-public (walks CP4)", Ordered, Label("internet", "control-plane"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("control-plane-public", labPrefix+"cppub") })

	It("CP4: with private access off a node reaches its API server through its NAT gateway, the internet gateway and the NLB", func() {
		run := passes(s, "CP4")
		Expect(lastRequestHop(run.Report).Seen.Src.String()).To(Equal("203.0.113.10"), "the API server sees nat-a's Elastic IP")
	})

	It("CP4-denied: publicAccessCidrs without the NAT gateway's Elastic IP drop the SYN at the NLB", func() {
		run := passes(s, "CP4-denied")
		last := run.Report.Hops[len(run.Report.Hops)-1]
		Expect(last.Point).To(Equal(walk.Point{Object: spec.ControlPlaneNLBName, Iface: "eth0"}))
		Expect(last.Dir).To(Equal(walk.In))
		Expect(last.Seen.Src.String()).To(Equal("203.0.113.20"))
	})
})
