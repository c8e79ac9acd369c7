package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/ns"
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

// nftTables is `nft list tables` on a node.
func nftTables(name, node string) string {
	GinkgoHelper()
	out, code := run(nil, "exec", "--lab", name, node, "--", "nft", "list", "tables")
	Expect(code).To(Equal(0), out)
	return out
}

// nodeEvidence is a walk's kernel evidence of one node (of the only node
// with nftables objects if node is empty).
func nodeEvidence(r *lab.Run, node string) []string {
	GinkgoHelper()
	var found [][]string
	for _, ev := range r.NATEvidence {
		if ev.Node == node || (node == "" && len(ev.NFT) > 0) {
			found = append(found, ev.NFT)
		}
	}
	Expect(found).To(HaveLen(1), "evidence of %q in %+v", node, r.NATEvidence)
	return found[0]
}

// noteWith is the run's note that starts with prefix.
func noteWith(r *lab.Run, prefix string) string {
	GinkgoHelper()
	for _, n := range r.Report.Notes {
		if strings.HasPrefix(n, prefix) {
			return n
		}
	}
	Fail(fmt.Sprintf("no note starts with %q: %v", prefix, r.Report.Notes))
	return ""
}

// expectNodePortObjects: the nftables objects a NodePort connection of
// Service default/web matched on its node, in kube-proxy's order (upstream
// pkg/proxy/nftables/proxier.go): the service-nodeports element sends it
// to the external chain, which marks it for masquerade (Cluster policy)
// and goes to the Service chain, or (Local policy) to the local chain;
// the endpoint chain DNATs to the endpoint (any, if ep is empty).
func expectNodePortObjects(objs []string, ep string, cluster bool) {
	GinkgoHelper()
	ext := "external-" + kubeproxy.NFTServicePortChainNameBase("default", "web", "tcp", "http")
	want := []any{Equal("service-nodeports element tcp . 30080 : goto " + ext), Equal(ext)}
	epRE := `192\.168\.\d+\.\d+`
	if ep != "" {
		epRE = regexp.QuoteMeta(ep)
	}
	endpoint := MatchRegexp(`^endpoint-\S+/web/tcp/http__` + epRE + `/80 \(dnat to ` + epRE + `:80\)$`)
	if cluster {
		want = append(want, Equal("mark-for-masquerade"), Equal("service-"+kubeproxy.NFTServicePortChainNameBase("default", "web", "tcp", "http")),
			endpoint, Equal("masquerading"))
	} else {
		want = append(want, Equal("local-"+kubeproxy.NFTServicePortChainNameBase("default", "web", "tcp", "http")), endpoint)
	}
	Expect(objs).To(HaveExactElements(want...), "the node's nft trace: %q", objs)
}

// processesIn are the processes named comm living in the lab's
// namespaces of objs.
func processesIn(name, comm string, objs ...string) []int {
	GinkgoHelper()
	inodes := map[string]bool{}
	for _, o := range objs {
		ino, err := ns.Inode(spec.NSName(name, o))
		Expect(err).NotTo(HaveOccurred())
		inodes[fmt.Sprintf("net:[%d]", ino)] = true
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		link, _ := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if strings.TrimSpace(string(c)) == comm && inodes[link] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// expectDyingThenGone: each process is already dying (dying), then gone.
func expectDyingThenGone(pids []int, what string) {
	GinkgoHelper()
	for _, pid := range pids {
		Expect(dying(pid)).To(BeTrue(), "%s (pid %d) outlived the killed labctl in the lab's namespace", what, pid)
	}
	for _, pid := range pids {
		waitExit(pid)
	}
}

// dying: the process is gone, a zombie, exiting (PF_EXITING), or has a
// SIGKILL queued. Read from /proc, never by waiting.
func dying(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	flags, _ := strconv.ParseUint(f[6], 10, 64)       // field 9 of proc(5)
	if f[0] == "Z" || f[0] == "X" || flags&0x4 != 0 { // PF_EXITING
		return true
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		if k == "SigPnd" || k == "ShdPnd" {
			mask, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if mask&(1<<(uint(syscall.SIGKILL)-1)) != 0 {
				return true
			}
		}
	}
	return false
}

// waitExit returns once the process has exited (pidfd_open(2), poll(2));
// call it only for a process that is dying.
func waitExit(pid int) {
	GinkgoHelper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			Expect(err).NotTo(HaveOccurred())
			return
		}
	}
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

	Describe("nodeport (walk B3, Cluster policy)", Ordered, func() {
		var s *lab.Session
		BeforeAll(func() { s = nftSession("nodeport", labPrefix+"nft-nodeport") })

		It("every walk passes; B3's node51 evidence names the service-nodeports element, the external chain, the masquerade mark and the endpoint chain", func() {
			for _, w := range s.Topo.Walks {
				passes(s, w.Name)
			}
			expectNodePortObjects(nodeEvidence(passes(s, "B3"), "node51"), "192.168.1.71", true)
		})
	})

	Describe("nodeport-local (walks C2 and B3-local, Local policy)", Ordered, func() {
		const name = labPrefix + "nft-nodeport-local"
		var s *lab.Session
		BeforeAll(func() { s = nftSession("nodeport-local", name) })

		It("every walk passes; C2's and B3-local's endpoint nodes name the service-nodeports element, the external and local chains and the endpoint chain, and no masquerade", func() {
			for _, w := range s.Topo.Walks {
				passes(s, w.Name)
			}
			expectNodePortObjects(nodeEvidence(passes(s, "B3-local"), "node71"), "192.168.1.71", false)
			c2 := passes(s, "C2")
			target := strings.TrimPrefix(noteWith(c2, "the load balancer picked target "), "the load balancer picked target ")
			Expect(target).To(BeElementOf("node71", "node81"))
			ep := map[string]string{"node71": "192.168.1.71", "node81": "192.168.1.81"}[target]
			expectNodePortObjects(nodeEvidence(c2, target), ep, false)
		})

		It("a traced walk killed with SIGKILL leaves no nft monitor in the lab's namespaces, and the next walk removes its trace tables", func() {
			_, st := runState([]string{"LABCTL_FAULT_AT=walk-nft-traced"}, "walk", "--lab", name, "--captures-dir", GinkgoT().TempDir(), "B3-local")
			Expect(st.Sys().(syscall.WaitStatus).Signal()).To(Equal(syscall.SIGKILL), "the crash point walk-nft-traced was never reached")
			killed := fmt.Sprintf("labctl-trace-%d", st.Pid())
			var nodes []string
			for _, n := range s.Topo.Nodes {
				nodes = append(nodes, n.Name)
			}
			left := 0
			for _, n := range s.Topo.Nodes {
				if strings.Contains(nftTables(name, n.Name), "table ip "+killed+"\n") {
					left++
				}
			}
			Expect(left).To(BeNumerically(">", 0), "the killed walk left no trace table: the spec proves nothing")
			// The kernel queued each printer's SIGKILL (PR_SET_PDEATHSIG)
			// before the killed labctl could be reaped: every nft left in
			// the lab's namespaces is already dying. Then wait for them.
			expectDyingThenGone(processesIn(name, "nft", nodes...), "nft")
			Expect(processesIn(name, "nft", nodes...)).To(BeEmpty())

			// The next walk, through the library as the suite runs walks,
			// removes the killed walk's table and leaves none of its own: C2
			// traces on every node (each is a target of the NLB).
			expectNodePortObjects(nodeEvidence(passes(s, "C2"), ""), "", false)
			for _, n := range s.Topo.Nodes {
				Expect(nftTables(name, n.Name)).NotTo(ContainSubstring("labctl-trace-"), n.Name)
			}
		})
	})

	Describe("nlb-instance (walks C1, NLB instance targets)", Ordered, func() {
		var s *lab.Session
		BeforeAll(func() { s = nftSession("nlb-instance", labPrefix+"nft-nlb-instance") })

		It("every walk passes; C1's target node51 names the service-nodeports element, the external chain, the masquerade mark and the endpoint chain", func() {
			for _, w := range s.Topo.Walks {
				passes(s, w.Name)
			}
			expectNodePortObjects(nodeEvidence(passes(s, "C1"), "node51"), "192.168.2.71", true)
		})

		It("walk -x explains C1 on node51: the service-nodeports element, mark-for-masquerade, the DNAT and the masquerade", func() {
			s.Explain = true
			defer func() { s.Explain = false }()
			text := explained(passes(s, "C1"))
			Expect(text).To(ContainSubstring("node51: nft kube-proxy services: verdict map @service-nodeports matched element tcp . 30080 : goto external-"))
			Expect(text).To(ContainSubstring("node51: nft kube-proxy mark-for-masquerade: meta mark set meta mark | 0x00004000"))
			Expect(text).To(MatchRegexp(`node51: nft kube-proxy endpoint-\S+: DNAT 192\.168\.1\.50:30080 -> 192\.168\.2\.71:80`))
			Expect(text).To(ContainSubstring("node51: nft kube-proxy masquerading: masquerade fully-random"))
			Expect(text).NotTo(ContainSubstring("nft monitor trace reported nothing"))
		})
	})

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
