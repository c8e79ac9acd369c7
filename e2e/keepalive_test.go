package e2e

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/google/gopacket/pcapgo"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// readCapture decodes a walk's pcapng, each packet with the point (the
// pcapng interface "object/iface") it was captured at.
func readCapture(file string) []walk.Packet {
	GinkgoHelper()
	b, err := os.ReadFile(file)
	Expect(err).NotTo(HaveOccurred())
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	Expect(err).NotTo(HaveOccurred())
	var out []walk.Packet
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return out
		}
		Expect(err).NotTo(HaveOccurred())
		intf, err := r.Interface(ci.InterfaceIndex)
		Expect(err).NotTo(HaveOccurred())
		p := walk.Decode(data)
		obj, iface, _ := strings.Cut(intf.Name, "/")
		p.Point, p.Time, p.Frame = walk.Point{Object: obj, Iface: iface}, ci.Timestamp, len(out)+1
		out = append(out, p)
	}
}

// ticket-114: the target's keep-alive is shorter than the ALB's idle
// timeout; the ALB reuses a connection its target closed and answers 502.
var _ = Describe("target keep-alive shorter than the ALB's idle timeout (ticket-114)", Ordered, Label("lb", "faults"), func() {
	const name = labPrefix + "keepalive"
	var s *lab.Session
	BeforeAll(func() { s = session("alb-ingress", name) })

	It("fails C4-rating with the ALB's 502; the capture at the target holds its FIN, then the request, then its RST, and nothing retried", func() {
		_, err := fault.Inject(s, "target-keepalive-short")
		Expect(err).NotTo(HaveOccurred())
		run := walkOnce(s, "C4-rating")
		Expect(run.Passed()).To(BeFalse())
		Expect(run.Report.Notes).To(ContainElement("the load balancer answered HTTP 502"), describe(run.Report))
		first := run.Report.FirstFailure()
		Expect(first).NotTo(BeNil())
		target := first.Point.Object
		Expect(target).To(HavePrefix("rating-"), describe(run.Report))
		Expect(run.Report.Notes).To(ContainElement(HavePrefix("where it stopped: "+target+" closed the ALB's kept-alive connection")), describe(run.Report))

		pod := s.Topo.Pod(target)
		at := walk.Point{Object: target, Iface: "eth0"}
		// The RST the target's kernel sent names the connection; its FIN on
		// the same connection came first, and the ALB's request between.
		var rst *walk.Packet
		pkts := readCapture(run.Pcap)
		for i := range pkts {
			if p := &pkts[i]; p.Point == at && p.Proto == "tcp" && p.TCP.RST && p.Src == pod.IP && p.SrcPort == 80 {
				rst = p
				break
			}
		}
		Expect(rst).NotTo(BeNil(), "no RST from %s in the capture at %s", target, at)
		conn := walk.Conn{Src: netip.AddrPortFrom(rst.Dst, rst.DstPort), Dst: netip.AddrPortFrom(rst.Src, rst.SrcPort)}
		var fin, req *walk.Packet
		walkRequests := 0
		for i := range pkts {
			p := &pkts[i]
			if p.Proto != "tcp" || p.Point != at {
				continue
			}
			switch {
			case p.Src == conn.Dst.Addr() && p.SrcPort == conn.Dst.Port() && p.Dst == conn.Src.Addr() && p.DstPort == conn.Src.Port() &&
				p.TCP.FIN && fin == nil:
				fin = p
			case p.Src == conn.Src.Addr() && p.SrcPort == conn.Src.Port() && len(p.Payload) > 0:
				req = p
			}
			if bytes.Contains(p.Payload, []byte(traffic.WalkHeader+":")) {
				walkRequests++
			}
		}
		Expect(fin).NotTo(BeNil(), "no FIN from %s on %v", target, conn)
		Expect(req).NotTo(BeNil(), "no request from the ALB on %v", conn)
		Expect(fin.Time.Before(req.Time)).To(BeTrue(), "the FIN (frame %d) must precede the request (frame %d)", fin.Frame, req.Frame)
		Expect(req.Time.After(rst.Time)).To(BeFalse(), "the RST (frame %d) answers the request (frame %d)", rst.Frame, req.Frame)
		Expect(walkRequests).To(Equal(1), "the ALB sent the walk's request once, to %s, and never again", target)
		// The ALB never saw the FIN before it reused the connection.
		Expect(run.Report.Notes).To(ContainElement(ContainSubstring("the FIN never reached alb-portal")), describe(run.Report))
	})

	It("passes once the targets' keep-alive is longer than the ALB's idle timeout, the fix AWS advises", func() {
		for _, p := range s.Topo.Pods {
			if p.Manifest == "Deployment default/rating" {
				Expect(agent.SetKeepAlive(name, p.Name, agent.ALBIdleTimeout+time.Second)).To(Succeed())
			}
		}
		run := walkOnce(s, "C4-rating")
		Expect(run.Passed()).To(BeTrue(), describe(run.Report))
		Expect(run.Report.Notes).To(ContainElement(ContainSubstring("the walk primed a kept-alive connection")), describe(run.Report))
	})

	It("passes once the fault is cleared", func() {
		cleared, err := fault.Clear(s)
		Expect(err).NotTo(HaveOccurred())
		Expect(cleared).To(Equal([]string{"target-keepalive-short"}))
		run := walkOnce(s, "C4-rating")
		Expect(run.Passed()).To(BeTrue(), describe(run.Report))
		Expect(run.Report.Notes).NotTo(ContainElement(ContainSubstring("keep-alive:")), "no keep-alive step without a keep-alive")
	})
})
