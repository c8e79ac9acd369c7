package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// passes runs a walk and fails the spec with the whole report if it did not pass.
func passes(s *lab.Session, name string) *lab.Run {
	GinkgoHelper()
	run := walkOnce(s, name)
	if run.Report != nil {
		Expect(run.Passed()).To(BeTrue(), describe(run.Report))
	} else {
		Expect(run.Passed()).To(BeTrue(), fmt.Sprintf("%+v %+v", run.Spread, run.Churn))
	}
	return run
}

func session(topo, name string) *lab.Session {
	GinkgoHelper()
	up(topo, name)
	s, err := lab.OpenSession(name)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(s.Close)
	return s
}

var _ = Describe("clusterip (walks B1, B2, B4)", Ordered, Label("services"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("clusterip", labPrefix+"cip") })

	It("B1: the client's node DNATs the VIP to the endpoint it picked; the client sees the VIP answer", func() {
		run := passes(s, "B1")
		e := run.Report.Expectation
		Expect(e.Endpoint).NotTo(BeNil())
		Expect(run.App.Object).To(Equal(e.Endpoint.Object), "the app that answered is the endpoint the capture showed")
		Expect(run.App.Remote).To(HavePrefix("192.168.1.51:"), "the endpoint sees the client pod's own IP")
		Expect(run.NATEvidence).To(HaveLen(1))
		Expect(run.NATEvidence[0].Chains).To(ContainElement("KUBE-SERVICES"))
		Expect(strings.Join(run.NATEvidence[0].Chains, " ")).To(MatchRegexp(`KUBE-SVC-\w+ KUBE-SEP-\w+`))
		Expect(run.NATEvidence[0].Conntrack).To(HaveLen(1))
		Expect(run.NATEvidence[0].Conntrack[0]).To(ContainSubstring("dst=10.100.0.100"))
	})

	It("B1 from a secondary-ENI pod passes too", func() { passes(s, "B1-secondary") })

	It("B1: over many connections every endpoint answers, the remote ones too", func() {
		run := passes(s, "B1-spread")
		remote := 0
		for _, e := range run.Spread.Endpoints {
			if !e.Local && run.Spread.Counts[e.Pod] > 0 {
				remote++
			}
		}
		Expect(remote).To(Equal(2))
	})

	It("B2: the DNS query is DNATed to a CoreDNS pod and answers the Service's ClusterIP", func() {
		run := passes(s, "B2")
		Expect(run.Report.Expectation.Endpoint.Object).To(HavePrefix("coredns-"))
		Expect(strings.Join(run.Report.Notes, "\n")).To(ContainSubstring("web resolved to 10.100.0.100"))
		passes(s, "B2-fqdn")
	})

	It("resolves Service names inside a pod with labctl exec, through the pod's resolv.conf", func() {
		out, code := run(nil, "exec", "--lab", labPrefix+"cip", "pod61", "--", "getent", "hosts", "web")
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("10.100.0.100"))
	})

	It("B4: a replaced pod gets a new IP, every node's rules follow, and the VIP keeps answering", func() {
		run := passes(s, "B4")
		c := run.Churn.Change
		Expect(c.Started.IP).NotTo(Equal(c.Deleted.IP))
		// kube-proxy's partial sync: only web's chains, and the deleted
		// pod's KUBE-SEP chain removed from the kernel.
		svc := kubeproxy.ServicePortChainName("default/web:http", "tcp")
		oldSEP := kubeproxy.ServicePortEndpointChainName("default/web:http", "tcp", c.Deleted.IP.String()+":80")
		newSEP := kubeproxy.ServicePortEndpointChainName("default/web:http", "tcp", c.Started.IP.String()+":80")
		// Three syncs on each node, in Kubernetes' order: the old endpoint
		// terminating (kube-proxy drops its KUBE-SEP chain at once, since
		// ready endpoints remain; flows already DNATed to it go on through
		// conntrack), the new one ready once its app listens, the old one
		// removed. Each touches web's chains only, never kube-dns's.
		Expect(c.Syncs).To(HaveLen(9))
		for _, sy := range c.Syncs {
			Expect(sy.Full).To(BeFalse(), sy.Node)
			for _, ch := range sy.Written {
				Expect(string(ch)).NotTo(ContainSubstring("kube-dns"), sy.Node)
			}
			switch sy.Step {
			case spec.StepTerminating:
				Expect(sy.Written).To(ContainElement(svc), sy.Node)
				Expect(sy.Written).NotTo(ContainElement(newSEP), sy.Node)
				Expect(sy.Deleted).To(Equal([]kubeproxy.Chain{oldSEP}), sy.Node)
			case spec.StepReady:
				Expect(sy.Written).To(ContainElements(svc, newSEP), sy.Node)
				Expect(sy.Written).To(HaveLen(4), "%s: web's SVC and its three ready SEPs", sy.Node)
				Expect(sy.Deleted).To(BeEmpty(), sy.Node)
			case spec.StepRemoved:
				Expect(sy.Deleted).To(BeEmpty(), sy.Node)
			default:
				Fail("a sync for step " + sy.Step)
			}
		}
		for _, n := range []string{"node51", "node71", "node81"} {
			save, err := exec.Command("ip", "netns", "exec", spec.NSName(labPrefix+"cip", n), "iptables-save", "-t", "nat").CombinedOutput()
			Expect(err).NotTo(HaveOccurred())
			Expect(string(save)).To(ContainSubstring("--to-destination "+c.Started.IP.String()+":80"), n)
			Expect(string(save)).NotTo(ContainSubstring("--to-destination "+c.Deleted.IP.String()+":80"), n)
			Expect(string(save)).NotTo(ContainSubstring(string(oldSEP)), n)
		}
		gone := spec.NSName(labPrefix+"cip", c.Deleted.Name)
		Expect(ns.Path(gone)).NotTo(BeAnExistingFile(), "the deleted pod's namespace")
		Expect(filepath.Join(kernel.EtcNetns, gone)).NotTo(BeAnExistingFile(), "the deleted pod's resolv.conf")
		// The walks still hold after the churn.
		passes(s, "B1")
	})

	It("answers kube-proxy's /healthz on :10256 in every node", func() {
		for _, ip := range []string{"192.168.1.50", "192.168.1.70", "192.168.1.80"} { // node51, node71, node81
			out, code := run(nil, "exec", "--lab", labPrefix+"cip", "client", "--", "bash", "-c",
				"exec 3<>/dev/tcp/"+ip+"/10256 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3")
			Expect(code).To(Equal(0), out)
			Expect(out).To(ContainSubstring("200 OK"), ip)
			Expect(out).To(ContainSubstring(`"lastUpdated"`), ip)
		}
	})
})

var _ = Describe("nodeport (walk B3)", Ordered, Label("services"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("nodeport", labPrefix+"np") })

	It("B3: node51 DNATs and SNATs to its own IP; the pod sees node51, the client sees node51:NodePort", func() {
		run := passes(s, "B3")
		Expect(run.App.Remote).To(HavePrefix("192.168.1.50:"))
		Expect(run.NATEvidence[0].Chains).To(ContainElements("KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"))
	})

	It("B3: the client is masqueraded even when the endpoint is on the receiving node", func() {
		run := passes(s, "B3-local-endpoint")
		Expect(run.App.Remote).To(HavePrefix("192.168.1.70:"))
	})
})

var _ = Describe("nodeport-local (externalTrafficPolicy Local)", Ordered, Label("services"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("nodeport-local", labPrefix+"npl") })

	It("a node with a local endpoint DNATs only: the pod sees the client's own IP", func() {
		run := passes(s, "B3-local")
		Expect(run.App.Remote).To(HavePrefix("192.168.2.10:"))
		// The counters were read (the NodePort chain moved), and masquerade's did not.
		Expect(run.NATEvidence[0].Chains).To(ContainElement("KUBE-NODEPORTS"))
		Expect(run.NATEvidence[0].Chains).NotTo(ContainElement("KUBE-MARK-MASQ"))
	})

	It("an endpoint on a secondary ENI answers out of eth0 (connmark 0x80, rule 1024)", func() {
		run := passes(s, "B3-local-secondary")
		for _, h := range run.Report.Hops {
			Expect(h.Point).NotTo(Equal(walk.Point{Object: "node81", Iface: "eth1"}))
		}
	})

	It("a node without a local endpoint drops the flow, and nothing reaches any pod", func() {
		passes(s, "B3-local-drop")
	})
})

var _ = Describe("clusterip on iptables-legacy, as on EKS's AL2 nodes", Ordered, Label("services"), func() {
	var s *lab.Session
	name := labPrefix + "cipleg"
	var before string
	var keys []string
	BeforeAll(func() {
		src, err := os.ReadFile(topology("clusterip"))
		Expect(err).NotTo(HaveOccurred())
		file := filepath.Join(GinkgoT().TempDir(), "clusterip-legacy.yaml")
		Expect(os.WriteFile(file, append([]byte("iptables: legacy\n"), src...), 0o644)).To(Succeed())
		keys = hostSysctlKeys()
		before = hostState(name, keys)
		upFile(file, name)
		s, err = lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
	})

	It("writes kube-proxy's rules with iptables-legacy and none with iptables-nft", func() {
		legacy := iptablesSave(name, "node51", "iptables-legacy-save")
		Expect(legacy).To(ContainSubstring("-A KUBE-SERVICES"))
		Expect(legacy).To(ContainSubstring("-A POSTROUTING -m comment --comment \"AWS SNAT CHAIN\" -j AWS-SNAT-CHAIN-0"))
		Expect(iptablesSave(name, "node51", "iptables-nft-save")).NotTo(ContainSubstring("KUBE-"))
	})

	It("B1 passes, with the KUBE-* counters read back from the legacy tables", func() {
		run := passes(s, "B1")
		Expect(run.NATEvidence).To(HaveLen(1))
		Expect(strings.Join(run.NATEvidence[0].Chains, " ")).To(MatchRegexp(`KUBE-SVC-\w+ KUBE-SEP-\w+`))
	})

	It("B4: endpoint churn re-syncs every node's legacy rules and the VIP keeps answering", func() {
		passes(s, "B4")
	})

	It("refuses walk --explain, which traces with nf_tables, naming the lab's backend", func() {
		out, code := run(nil, "walk", "--lab", name, "--explain", "B1", "--captures-dir", GinkgoT().TempDir())
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("uses iptables-legacy"))
	})

	It("leaves the host's legacy and nft tables as they were", func() {
		Expect(hostState(name, keys)).To(Equal(before))
	})
})

// iptablesSave is a node's rules as one backend's save program prints them.
func iptablesSave(labName, node, prog string) string {
	GinkgoHelper()
	out, err := exec.Command("ip", "netns", "exec", spec.NSName(labName, node), prog).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return string(out)
}
