package e2e

import (
	"encoding/json"
	"regexp"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// nftCounters are the values `nft list` prints after each counter.
var nftCounters = regexp.MustCompile(` packets \d+ bytes \d+`)

// awsCNITable is aws-node's native table on a node, as the kernel holds
// it, without the counters' values.
func awsCNITable(name, node string) string {
	GinkgoHelper()
	out, code := run(nil, "exec", "--lab", name, node, "--", "nft", "list", "table", "ip", "aws-cni")
	Expect(code).To(Equal(0), out)
	return nftCounters.ReplaceAllString(out, "")
}

// snatMarked is how many packets snat-mark's last rule marked 0x80 on a node.
func snatMarked(name, node string) string {
	GinkgoHelper()
	out, code := run(nil, "exec", "--lab", name, node, "--", "nft", "list", "chain", "ip", "aws-cni", "snat-mark")
	Expect(code).To(Equal(0), out)
	m := regexp.MustCompile(`counter packets (\d+) bytes \d+ ct mark set`).FindStringSubmatch(out)
	Expect(m).NotTo(BeNil(), out)
	return m[1]
}

var _ = Describe("VPC CNI v1.23's native nft table (pod-egress-nft)", Ordered, Label("internet", "nftables", "vpccni"), func() {
	const name = labPrefix + "awscni"
	var s *lab.Session
	BeforeAll(func() {
		s = session("pod-egress-nft", name)
		Expect(s.Topo.VPCCNINFTTable()).To(BeTrue())
	})

	It("holds the table the renderer wrote and no iptables connmark rule of aws-node; SNAT and mangle stay iptables rules", func() {
		p := plan.Build(s.Topo, name)
		for _, n := range s.Topo.Nodes {
			_, want := plan.VPCCNINode(s.Topo.VPC.CIDR, n.ENI(0).IP, spec.ENIName(0), spec.IptablesNFT, s.Topo.NodeVPCCNI(n.Name))
			Expect(awsCNITable(name, n.Name)).To(Equal(want), n.Name)
			save, code := run(nil, "exec", "--lab", name, n.Name, "--", "iptables-save")
			Expect(code).To(Equal(0), save)
			Expect(awsLines(save)).To(Equal(awsLines(p.NS(n.Name).Iptables)), n.Name+"'s aws-node iptables rules")
			Expect(save).NotTo(ContainSubstring("AWS-CONNMARK-CHAIN-0"), n.Name)
			Expect(save).NotTo(ContainSubstring(`"AWS, outbound connections"`), n.Name)
			Expect(save).NotTo(ContainSubstring(`"AWS, CONNMARK"`), n.Name)
			Expect(save).To(ContainSubstring("-A AWS-SNAT-CHAIN-0 ! -o vlan+"), n.Name)
			Expect(save).To(ContainSubstring(`-i eni+ -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark`), n.Name)
		}
	})

	It("status names the modes", func() {
		out, code := run(nil, "status", "--lab", name, "-o", "json")
		Expect(code).To(Equal(0), out)
		var doc struct {
			VPCCNI    map[string]string `json:"vpcCNI"`
			KubeProxy map[string]string `json:"kubeProxy"`
		}
		Expect(json.Unmarshal([]byte(out), &doc)).To(Succeed())
		Expect(doc.VPCCNI).To(Equal(map[string]string{"version": "v1.23", "iptables": "iptables-nft", "connmark": "nft table ip aws-cni"}))
		Expect(doc.KubeProxy).To(Equal(map[string]string{"mode": "nftables"}))
	})

	It("D2: snat-mark marks the pod's connection and AWS-SNAT-CHAIN-0 SNATs it to the node's primary IP", func() {
		before := snatMarked(name, "node51")
		r := passes(s, "D2")
		var left string
		for _, h := range r.Report.Hops {
			if h.Point == (walk.Point{Object: "node51", Iface: "eth0"}) && h.Leg == walk.Request && h.Seen != nil {
				left = h.Seen.Src.String()
			}
		}
		Expect(left).To(Equal("192.168.1.50"), describe(r.Report))
		Expect(snatMarked(name, "node51")).NotTo(Equal(before), "snat-mark did not mark D2's connection")
	})

	It("D2-secondary: the mark from the native table sends a secondary-ENI pod's internet traffic out of eth0", func() {
		passes(s, "D2-secondary")
	})

	It("D2-icmp and D2-no-eip pass too", func() {
		passes(s, "D2-icmp")
		passes(s, "D2-no-eip")
	})

	It("A4-tcp and A4-subnet: snat-mark returns for the VPC CIDR, so a secondary-ENI pod's VPC traffic keeps its own ENI", func() {
		passes(s, "A4-tcp")
		passes(s, "A4-subnet")
	})

	It("B1, B1-secondary and B2: kube-proxy's DNAT at dstnat binds the connection, so the nat chain at dstnat + 10 never runs and nothing is marked", func() {
		before := snatMarked(name, "node51")
		passes(s, "B1")
		passes(s, "B1-secondary")
		passes(s, "B2")
		Expect(snatMarked(name, "node51")).To(Equal(before), "a Service connection was marked for SNAT")
	})
})
