package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// nftVariant writes topologies/<topo>.yaml with kube-proxy in nftables
// mode into a temporary directory and returns its path.
func nftVariant(topo string) string {
	GinkgoHelper()
	src, err := os.ReadFile(topology(topo))
	Expect(err).NotTo(HaveOccurred())
	file := filepath.Join(GinkgoT().TempDir(), topo+"-nftables.yaml")
	// The lab document comes first: a top-level key before its comments.
	Expect(os.WriteFile(file, append([]byte("kubeProxy:\n  mode: nftables\n"), src...), 0o644)).To(Succeed())
	return file
}

func nftSession(topo, name string) *lab.Session {
	GinkgoHelper()
	upFile(nftVariant(topo), name)
	s, err := lab.OpenSession(name)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(s.Close)
	Expect(s.Topo.NFTablesMode()).To(BeTrue())
	return s
}

// nftTable is kube-proxy's table on a node, as the kernel holds it.
func nftTable(name, node string) string {
	GinkgoHelper()
	out, code := run(nil, "exec", "--lab", name, node, "--", "nft", "list", "table", "ip", "kube-proxy")
	Expect(code).To(Equal(0), out)
	return out
}

// kubeProxyIptables is what iptables-nft shows of kube-proxy on a node.
func kubeProxyIptables(name, node string) string {
	GinkgoHelper()
	out, code := run(nil, "exec", "--lab", name, node, "--", "iptables-nft-save")
	Expect(code).To(Equal(0), out)
	var kp []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "KUBE-SERVICES") || strings.Contains(l, "KUBE-SVC-") || strings.Contains(l, "KUBE-NODEPORTS") {
			kp = append(kp, l)
		}
	}
	return strings.Join(kp, "\n")
}

func nftEndpointChain(svcNS, svc, proto, port, ip, target string) string {
	return "endpoint-" + kubeproxy.NFTEndpointChainNameBase(svcNS, svc, proto, port, ip, target)
}

var _ = Describe("kube-proxy in nftables mode", Label("services", "nftables"), func() {
	Describe("clusterip (walks B1, B2, B4)", Ordered, func() {
		const name = labPrefix + "nftcip"
		var s *lab.Session
		BeforeAll(func() { s = nftSession("clusterip", name) })

		It("writes kube-proxy's ip kube-proxy table on every node and no kube-proxy iptables rule", func() {
			st, err := state.Read(name)
			Expect(err).NotTo(HaveOccurred())
			Expect(st.KubeProxyMode).To(Equal(spec.KubeProxyNFTables))
			for _, n := range s.Topo.Nodes {
				table := nftTable(name, n.Name)
				Expect(table).To(ContainSubstring("map service-ips"), n.Name)
				Expect(table).To(ContainSubstring("10.100.0.100 . tcp . 80 : goto service-"), n.Name)
				Expect(kubeProxyIptables(name, n.Name)).To(BeEmpty(), n.Name)
			}
		})

		It("B1, B1-secondary, B1-spread and B2 pass through the nftables table", func() {
			b1 := passes(s, "B1")
			Expect(b1.NATEvidence).To(HaveLen(1))
			ev := b1.NATEvidence[0]
			svc := "service-" + kubeproxy.NFTServicePortChainNameBase("default", "web", "tcp", "http")
			Expect(ev.NFT).To(HaveLen(3), "node51's nft trace: %v", ev.NFT)
			Expect(ev.NFT[0]).To(Equal("service-ips element 10.100.0.100 . tcp . 80 : goto " + svc))
			Expect(ev.NFT[1]).To(Equal(svc))
			Expect(ev.NFT[2]).To(MatchRegexp(`^endpoint-\S+/web/tcp/http__192\.168\.\d+\.\d+/80 \(dnat to 192\.168\.\d+\.\d+:80\)$`))
			passes(s, "B1-secondary")
			run := passes(s, "B1-spread")
			reached := 0
			for _, e := range run.Spread.Endpoints {
				if run.Spread.Counts[e.Pod] > 0 {
					reached++
				}
			}
			Expect(reached).To(Equal(3), "numgen random mod 3 reaches every endpoint")
			passes(s, "B2")
		})

		It("B4: partial nft syncs replace the deleted pod's endpoint chain with the new one's", func() {
			run := passes(s, "B4")
			c := run.Churn.Change
			oldEP := nftEndpointChain("default", "web", "tcp", "http", c.Deleted.IP.String(), "80")
			newEP := nftEndpointChain("default", "web", "tcp", "http", c.Started.IP.String(), "80")
			Expect(c.Syncs).To(HaveLen(9))
			for _, sy := range c.Syncs {
				Expect(sy.NFTables).To(BeTrue(), sy.Node)
				Expect(sy.Full).To(BeFalse(), "%s %s: %s", sy.Node, sy.Step, sy.Fallback)
				if sy.Step == spec.StepTerminating {
					Expect(sy.Deleted).To(Equal([]kubeproxy.Chain{kubeproxy.Chain(oldEP)}), sy.Node)
				}
			}
			for _, n := range s.Topo.Nodes {
				table := nftTable(name, n.Name)
				Expect(table).To(ContainSubstring("chain "+newEP+" {"), n.Name)
				Expect(table).NotTo(ContainSubstring(oldEP), n.Name)
				Expect(table).NotTo(ContainSubstring(c.Deleted.IP.String()), n.Name)
			}
		})

		It("walk -x explains B1's nftables hops: the service-ips element, the numgen choice and the DNAT", func() {
			s.Explain = true
			defer func() { s.Explain = false }()
			text := explained(passes(s, "B1"))
			Expect(text).To(ContainSubstring("node51: nft kube-proxy services: verdict map @service-ips matched element 10.100.0.100 . tcp . 80 : goto service-"))
			Expect(text).To(MatchRegexp(`node51: nft kube-proxy service-\S+: numgen random mod 3 chose endpoint-`))
			Expect(text).To(MatchRegexp(`node51: nft kube-proxy endpoint-\S+: DNAT 10\.100\.0\.100:80 -> 192\.168\.\d+\.\d+:80`))
			Expect(text).NotTo(ContainSubstring("nft monitor trace reported nothing"))
		})

		It("refuses kube-proxy-jump-gone, an iptables-mode fault, naming the lab's mode", func() {
			_, err := fault.Inject(s, "kube-proxy-jump-gone")
			Expect(err).To(MatchError(ContainSubstring("runs kube-proxy in nftables mode")))
		})

		It("a CoreDNS pod delete moves both DNS ports' endpoints, and B2 still answers", func() {
			var dns string
			for _, p := range s.Topo.Pods {
				if strings.HasPrefix(p.Name, "coredns-") {
					dns = p.Name
					break
				}
			}
			Expect(dns).NotTo(BeEmpty())
			// A chain a crashed sync left behind: the next sync deletes it.
			leftover := nftEndpointChain("default", "web", "tcp", "http", "192.168.1.250", "80")
			out, code := run(nil, "exec", "--lab", name, "node71", "--", "nft", "add", "chain", "ip", "kube-proxy", leftover)
			Expect(code).To(Equal(0), out)
			Expect(nftTable(name, "node71")).To(ContainSubstring(leftover))
			c, err := churn.DeletePod(context.Background(), name, dns)
			Expect(err).NotTo(HaveOccurred())
			for _, sy := range c.Syncs {
				Expect(sy.Full).To(BeFalse(), "%s %s: %s", sy.Node, sy.Step, sy.Fallback)
			}
			for _, n := range s.Topo.Nodes {
				table := nftTable(name, n.Name)
				Expect(table).NotTo(ContainSubstring(leftover), n.Name)
				for _, port := range [][2]string{{"udp", "dns"}, {"tcp", "dns-tcp"}} {
					Expect(table).To(ContainSubstring("chain "+nftEndpointChain("kube-system", "kube-dns", port[0], port[1], c.Started.IP.String(), "53")+" {"), n.Name)
					Expect(table).NotTo(ContainSubstring(nftEndpointChain("kube-system", "kube-dns", port[0], port[1], c.Deleted.IP.String(), "53")), n.Name)
				}
			}
			// A session knows the pods it was opened with: open one that
			// knows the replacement.
			after, err := lab.OpenSession(name)
			Expect(err).NotTo(HaveOccurred())
			defer after.Close()
			passes(after, "B2")
		})
	})

	for _, c := range []struct{ topo, label string }{
		{"nodeport", "B3 (Cluster)"},
		{"nodeport-local", "B3-local (Local)"},
		{"nlb-instance", "C1 (NLB instance targets)"},
	} {
		It(c.topo+": every walk passes, "+c.label, func() {
			s := nftSession(c.topo, labPrefix+"nft-"+c.topo)
			Expect(s.Topo.Walks).NotTo(BeEmpty())
			for _, w := range s.Topo.Walks {
				passes(s, w.Name)
			}
		})
	}

	Describe("ticket-115's fault on clusterip-nftables", Ordered, func() {
		var s *lab.Session
		BeforeAll(func() { s = session("clusterip-nftables", labPrefix+"nft115") })

		It("B1 fails at node51 naming the service-ips element it lacks, and passes once the fault is cleared", func() {
			_, err := fault.Inject(s, "nft-service-element-missing")
			Expect(err).NotTo(HaveOccurred())
			run := walkOnce(s, "B1")
			Expect(run.Passed()).To(BeFalse())
			Expect(fault.FirstFailure(run.Report)).To(Equal("node51"))
			Expect(strings.Join(run.Report.Notes, "\n")).To(ContainSubstring(
				"where it stopped: node51: kube-proxy's verdict map service-ips (table ip kube-proxy) has no element 10.100.0.100 . tcp . 80 for Service default/web"))
			_, err = fault.Clear(s)
			Expect(err).NotTo(HaveOccurred())
			passes(s, "B1")
		})
	})
})
