package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/vishvananda/netlink"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// syncBuffer is an output buffer a test may read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// health returns the load balancers' view of one target, "" while unknown
// and "mixed" while the groups it is in disagree.
func health(name, target string) string {
	h, err := agent.ReadHealth(name)
	if err != nil {
		return ""
	}
	state := ""
	for _, th := range h {
		if th.Object == target {
			if state != "" && state != th.State {
				return "mixed"
			}
			state = th.State
		}
	}
	return state
}

// inNS runs a command in a lab object's namespace.
func inNS(name, object string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", spec.NSName(name, object)}, args...)...).CombinedOutput()
	return string(out), err
}

// connects reports whether the client completes a TCP handshake with addr.
func connects(name, object, addr string) bool {
	_, err := inNS(name, object, "bash", "-c", "exec 3<>/dev/tcp/"+strings.Replace(addr, ":", "/", 1))
	return err == nil
}

var _ = Describe("nlb-instance (walk C1) and NLB health", Ordered, Label("lb"), func() {
	const name = labPrefix + "nlbi"
	var s *lab.Session
	BeforeAll(func() { s = session("nlb-instance", name) })

	It("C1: the NLB sends to node51 (no endpoint), which DNATs and SNATs across AZs to pod71", func() {
		run := passes(s, "C1")
		Expect(run.App.Remote).To(HavePrefix("192.168.1.50:"), "the pod sees node51, Cluster policy")
		Expect(run.Report.CrossAZ.Packets).To(BeNumerically(">", 0))
		Expect(run.Report.CrossAZ.Crossings).To(HaveKey("us-east-1a -> us-east-1b"))
		passes(s, "C1-b")
	})

	It("sets the NLB's TCP idle timeout, 350 s, as its namespace's conntrack timeout; a node has kube-proxy's 24 h", func() {
		nlb, err := inNS(name, "nlb-web", "cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established")
		Expect(err).NotTo(HaveOccurred(), nlb)
		Expect(strings.TrimSpace(nlb)).To(Equal("350"))
		node, err := inNS(name, "node51", "cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established")
		Expect(err).NotTo(HaveOccurred(), node)
		Expect(strings.TrimSpace(node)).To(Equal("86400"), "kube-proxy's conntrack.tcpEstablishedTimeout on EKS")
	})

	It("C1-hairpin: a pod that lands on its own node through the NLB gets the answer over its veth, and times out", func() {
		run := passes(s, "C1-hairpin")
		Expect(run.Report.Notes).To(ContainElement(HavePrefix("traffic: no answer, as expected")))
		last := run.Report.Hops[len(run.Report.Hops)-1]
		Expect(last.Point).To(Equal(walk.Point{Object: "pod71", Iface: "eth0"}))
		Expect(last.Seen.Src.String()+":"+fmt.Sprint(last.Seen.SrcPort)).To(Equal("192.168.2.70:30080"),
			"the answer comes from node71's NodePort, not from the NLB pod71 dialled")
		for _, h := range run.Report.Hops {
			if h.Leg == walk.Reply {
				Expect(h.Point.Object).To(BeElementOf("pod71", "node71"), "the reply never leaves node71")
			}
		}
	})

	It("labctl lb lists the NLB, its target group and every node healthy, endpoint or not", func() {
		out, code := run(nil, "lb", "--lab", name)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("internal NLB, Service default/web, by the aws-load-balancer-controller"))
		Expect(regexp.MustCompile(`(?m)  healthy$`).FindAllString(out, -1)).To(HaveLen(3), out)
	})

	It("a target whose health checks fail stays in use while it is its AZ's only one (routing failover), and is healthy again when they pass", func() {
		rule := []string{"PREROUTING", "-s", "192.168.102.0/24", "-p", "tcp", "--dport", "30080", "-j", "DROP"}
		out, err := inNS(name, "node71", append([]string{"iptables", "-t", "raw", "-I"}, rule...)...)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func() string { return health(name, "node71") }, 30*time.Second, 100*time.Millisecond).Should(Equal("unhealthy"))
		// node71 is the only target of the NLB node in us-east-1b, which has
		// cross-zone off: below the routing failover threshold (one healthy
		// target) the node sends to every target it has, unhealthy ones
		// included, as AWS's target group health does; the client's flows,
		// which the blocked health checks do not share, still get through.
		Expect(connects(name, "client", "192.168.102.4:80")).To(BeTrue())
		out, err = inNS(name, "node71", append([]string{"iptables", "-t", "raw", "-D"}, rule...)...)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func() string { return health(name, "node71") }, 30*time.Second, 100*time.Millisecond).Should(Equal("healthy"))
		Eventually(func() bool { return connects(name, "client", "192.168.102.4:80") }, 10*time.Second).Should(BeTrue())
	})

	It("fails open when every target is unhealthy", func() {
		for _, n := range []string{"node51", "node71", "node81"} {
			out, err := inNS(name, n, "iptables", "-t", "raw", "-I", "PREROUTING", "-s", "192.168.96.0/19", "-p", "tcp", "--dport", "30080", "-j", "DROP")
			Expect(err).NotTo(HaveOccurred(), out)
		}
		for _, n := range []string{"node51", "node71", "node81"} {
			Eventually(func() string { return health(name, n) }, 30*time.Second, 100*time.Millisecond).Should(Equal("unhealthy"))
		}
		// The client's own address is preserved, so its flow is not blocked:
		// it is served because the NLB fails open.
		Expect(connects(name, "client", "192.168.101.4:80")).To(BeTrue())
		for _, n := range []string{"node51", "node71", "node81"} {
			out, err := inNS(name, n, "iptables", "-t", "raw", "-D", "PREROUTING", "-s", "192.168.96.0/19", "-p", "tcp", "--dport", "30080", "-j", "DROP")
			Expect(err).NotTo(HaveOccurred(), out)
		}
	})
})

var _ = Describe("nodeport-local with its NLB (walk C2)", Ordered, Label("lb"), func() {
	var s *lab.Session
	const name = labPrefix + "c2"
	BeforeAll(func() { s = session("nodeport-local", name) })

	It("C2: the node without an endpoint fails /healthz; traffic reaches a pod that sees the client", func() {
		Expect(health(name, "node51")).To(Equal("unhealthy"))
		run := passes(s, "C2")
		Expect(run.App.Remote).To(HavePrefix("192.168.2.10:"))
	})
})

var _ = Describe("nlb-ip (walk C3)", Ordered, Label("lb"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("nlb-ip", labPrefix+"nlbip") })

	It("C3: ip targets reach the pod directly; the pod sees the NLB; no kube-proxy chain counts the flow", func() {
		run := passes(s, "C3")
		Expect(run.App.Remote).To(HavePrefix("192.168.101."))
	})

	It("C3 with preserve_client_ip.enabled: the pod sees the client, the reply still returns through the NLB", func() {
		run := passes(s, "C3-preserve")
		Expect(run.App.Remote).To(HavePrefix("192.168.50.10:"))
	})

	It("C3-hairpin: with the client IP preserved, the NLB hands a pod its own SYN from its own address; the pod's routing drops it (a martian source) before any socket sees it", func() {
		const pod, ip = "web-kbtv4l6gq8-svb47", "192.168.2.5"
		name := labPrefix + "nlbip"
		out, err := inNS(name, pod, "sysctl", "-n", "net.ipv4.conf.all.accept_local", "net.ipv4.conf.eth0.accept_local")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(strings.Fields(out)).To(Equal([]string{"0", "0"}), "the lab pins accept_local=0 in pods")
		// Two counting rules in the pod: the hairpinned SYN as it arrives
		// (raw PREROUTING), and as it would reach a local socket (mangle
		// INPUT), which a martian never does.
		match := []string{"-s", ip, "-d", ip, "-p", "tcp", "--dport", "80", "--syn"}
		rules := [][]string{
			append([]string{"-t", "raw", "PREROUTING", "-i", "eth0"}, append(match, "-m", "comment", "--comment", "hairpin-in")...),
			append([]string{"-t", "mangle", "INPUT"}, append(match, "-m", "comment", "--comment", "hairpin-local")...),
		}
		for _, r := range rules {
			out, err := inNS(name, pod, append([]string{"iptables", r[0], r[1], "-I"}, r[2:]...)...)
			Expect(err).NotTo(HaveOccurred(), out)
			DeferCleanup(func() {
				out, err := inNS(name, pod, append([]string{"iptables", r[0], r[1], "-D"}, r[2:]...)...)
				Expect(err).NotTo(HaveOccurred(), out)
			})
		}
		count := func(comment string) int {
			out, err := inNS(name, pod, "iptables-save", "-c")
			Expect(err).NotTo(HaveOccurred(), out)
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "--comment "+comment) {
					var pkts, bytes int
					_, err := fmt.Sscanf(l, "[%d:%d]", &pkts, &bytes)
					Expect(err).NotTo(HaveOccurred(), l)
					return pkts
				}
			}
			Fail("no rule " + comment + " in:\n" + out)
			return 0
		}
		run := passes(s, "C3-hairpin")
		Expect(run.Report.Notes).To(ContainElement(HavePrefix("traffic: no answer, as expected")))
		last := run.Report.Hops[len(run.Report.Hops)-1]
		Expect(last.Point).To(Equal(walk.Point{Object: pod, Iface: "eth0"}))
		Expect(last.Seen.Src).To(Equal(last.Seen.Dst), "the SYN comes back from the pod's own address")
		Expect(count("hairpin-in")).To(BeNumerically(">", 0), "the hairpinned SYN never arrived on the pod's eth0")
		Expect(count("hairpin-local")).To(Equal(0), "the hairpinned SYN reached the pod's local input")
	})

	It("C3-hairpin-snat: without client IP preservation the same hairpin works, the pod seeing the NLB", func() {
		run := passes(s, "C3-hairpin-snat")
		Expect(run.App.Object).To(Equal("web-kbtv4l6gq8-svb47"))
		Expect(run.App.Remote).To(HavePrefix("192.168.102.4:"))
	})
})

var _ = Describe("alb-ingress (walk C4)", Ordered, Label("lb"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("alb-ingress", labPrefix+"alb") })

	It("C4: path rules pick the Service; the pod sees the ALB; X-Forwarded-For carries the client", func() {
		run := passes(s, "C4-order")
		Expect(run.App.Object).To(HavePrefix("order-"))
		Expect(run.App.Remote).To(HavePrefix("192.168.101."))
		Expect(run.App.Headers["X-Forwarded-For"]).To(Equal([]string{"192.168.50.10"}))
		Expect(run.App.Headers["X-Forwarded-Proto"]).To(Equal([]string{"http"}))
		Expect(run.App.Headers["X-Amzn-Trace-Id"][0]).To(HavePrefix("Root=1-"))
		run = passes(s, "C4-rating")
		Expect(run.App.Object).To(HavePrefix("rating-"))
	})

	It("C4: a path no rule matches gets the ALB's 404, and no pod sees it", func() { passes(s, "C4-404") })

	It("C4: a rule whose target group has no targets gets the ALB's 503", func() { passes(s, "C4-503") })

	It("C4: cross-zone on reaches every AZ; off on the target group keeps to the node's AZ", func() {
		passes(s, "C4-crosszone")
		passes(s, "C4-zonal")
	})

	It("answers 502 when the target resets the connection, and the walk shows the RST leaving the pod", func() {
		_, err := fault.Inject(s, "target-port-closed")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _, _ = fault.Clear(s) })
		run := walkOnce(s, "C4-rating")
		Expect(run.Report.Notes).To(ContainElement("the load balancer answered HTTP 502"))
		first := run.Report.FirstFailure()
		Expect(first).NotTo(BeNil())
		Expect(first.Point.Object).To(HavePrefix("rating-"))
		Expect(first.Seen.TCP.RST).To(BeTrue(), describe(run.Report))
		Expect(first.Describe()).To(ContainSubstring("a TCP RST from " + first.Seen.Src.String()))
		// The SYN got there: every request hop up to the pod matched.
		for _, h := range run.Report.Hops {
			if h.Leg == walk.Request {
				Expect(h.Verdict).To(Equal(walk.OK), h.Describe())
			}
		}
	})

	It("answers 504 when the target never answers, on a connection kept alive and on a new one", func() {
		// conn is the ALB's connection to the target, from the walk's note.
		conn := func(run *lab.Run) string {
			for _, n := range run.Report.Notes {
				if c, ok := strings.CutPrefix(n, "the ALB's connection to the target: "); ok {
					return c
				}
			}
			return ""
		}
		first := passes(s, "C4-rating")
		var alb string
		for _, n := range first.Report.Notes {
			if _, rest, ok := strings.Cut(n, "the client sent to "); ok {
				alb = rest
			}
		}
		Expect(alb).NotTo(BeEmpty(), describe(first.Report))
		// Two plain requests just before the fault: round robin gives each
		// rating pod a connection the ALB keeps alive for 3 s, so the next
		// walk finds one open (a walk's own set-up would take a good part
		// of those 3 s).
		for range 2 {
			out, code := run(nil, "exec", "--lab", labPrefix+"alb", "client", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
				"http://"+alb+"/rating")
			Expect(code).To(Equal(0), out)
			Expect(out).To(Equal("200"))
		}
		_, err := fault.Inject(s, "target-blackholed")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _, _ = fault.Clear(s) })
		var used []string
		for range 2 {
			run := walkOnce(s, "C4-rating")
			Expect(run.Report.Notes).To(ContainElement("the load balancer answered HTTP 504"), describe(run.Report))
			first := run.Report.FirstFailure()
			Expect(first).NotTo(BeNil())
			Expect(first.Point.Object).To(HavePrefix("rating-"))
			Expect(first.Leg).To(Equal(walk.Reply))
			Expect(first.Verdict).To(Equal(walk.Missing), describe(run.Report))
			used = append(used, conn(run))
		}
		// The first 504 came over a kept-alive connection, after the idle
		// timeout (without it the request would hang); the second, after
		// those 3 s, over a new one, after the connect timeout.
		Expect(used[0]).To(ContainSubstring("kept alive from an earlier request"))
		Expect(used[1]).To(HaveSuffix(", new"))
	})
})

var _ = Describe("internet-to-pod (walk D1)", Ordered, Label("lb", "internet"), func() {
	var s *lab.Session
	BeforeAll(func() { s = session("internet-to-pod", labPrefix+"d1") })

	It("D1: DNS answers every ALB public IP with TTL 60; the gateway DNATs; the pod sees the ALB; the client gets the answer", func() {
		run := passes(s, "D1")
		// Two or more public IPs answered, with the TTL the server really sent.
		Expect(strings.Join(run.Report.Notes, "\n")).To(MatchRegexp(`with \[(\d+\.){3}\d+( (\d+\.){3}\d+)+\], TTL 60 \(want`))
		Expect(run.App.Headers["X-Forwarded-For"]).To(Equal([]string{"198.51.100.20"}))
		passes(s, "D1-c")
	})
})

var _ = Describe("internet-to-pod with cross-zone off: Route 53 answers only the nodes whose AZ has healthy targets", Ordered, Label("lb", "internet"), func() {
	var s *lab.Session
	name := labPrefix + "d1zone"
	var ratingC string
	BeforeAll(func() {
		src, err := os.ReadFile(topology("internet-to-pod"))
		Expect(err).NotTo(HaveOccurred())
		const at = "    alb.ingress.kubernetes.io/target-type: ip\n"
		variant := strings.Replace(string(src), at, at+"    alb.ingress.kubernetes.io/target-group-attributes: load_balancing.cross_zone.enabled=false\n", 1)
		Expect(variant).NotTo(Equal(string(src)), "the Ingress annotation to extend moved")
		file := filepath.Join(GinkgoT().TempDir(), "internet-to-pod-zonal.yaml")
		Expect(os.WriteFile(file, []byte(variant), 0o644)).To(Succeed())
		upFile(file, name)
		s, err = lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
		h, err := agent.ReadHealth(name)
		Expect(err).NotTo(HaveOccurred())
		for _, th := range h {
			if strings.Contains(th.Group, "rating") && th.AZ == "us-east-1c" {
				ratingC = th.Target
			}
		}
		Expect(ratingC).NotTo(BeEmpty(), "no rating target in us-east-1c: %+v", h)
	})

	It("leaves us-east-1a, where rating has no target, out of the answer: D1 through it fails at DNS, D1-c passes", func() {
		d1 := walkOnce(s, "D1")
		Expect(d1.Passed()).To(BeFalse(), describe(d1.Report))
		notes := strings.Join(d1.Report.Notes, "\n")
		Expect(notes).To(MatchRegexp(`answered portal\.example\.com with \[203\.0\.113\.\d+ 203\.0\.113\.\d+\], TTL 60`))
		Expect(notes).To(ContainSubstring("the node in us-east-1a (203.0.113."))
		Expect(notes).To(MatchRegexp(`out of DNS: target group \S*rating\S* has cross-zone off and no healthy target in us-east-1a`))
		passes(s, "D1-c")
		out, code := run(nil, "lb", "--lab", name)
		Expect(code).To(Equal(0), out)
		Expect(out).To(MatchRegexp(`node us-east-1a .*, out of DNS: target group alb-portal-rating-80 has cross-zone off`))
		Expect(regexp.MustCompile(`node us-east-1[bc] .*, in DNS\n`).FindAllString(out, -1)).To(HaveLen(2), out)
	})

	It("drops us-east-1c from the answer once rating's target there fails its health checks, and takes it back when they pass", func() {
		ip, _, _ := strings.Cut(ratingC, ":")
		var pod string
		h, err := agent.ReadHealth(name)
		Expect(err).NotTo(HaveOccurred())
		for _, th := range h {
			if th.Target == ratingC {
				pod = th.Object
			}
		}
		rule := []string{"INPUT", "-d", ip, "-p", "tcp", "--dport", "80", "-j", "DROP"}
		out, err := inNS(name, pod, append([]string{"iptables", "-I"}, rule...)...)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func() string { return health(name, pod) }, 30*time.Second, 100*time.Millisecond).Should(Equal("unhealthy"))
		run := walkOnce(s, "D1-c")
		Expect(run.Passed()).To(BeFalse(), describe(run.Report))
		notes := strings.Join(run.Report.Notes, "\n")
		Expect(notes).To(MatchRegexp(`answered portal\.example\.com with \[203\.0\.113\.\d+\], TTL 60`))
		Expect(notes).To(MatchRegexp(`the node in us-east-1c \(203\.0\.113\.\d+\) is out of DNS: target group \S*rating\S* has cross-zone off and no healthy target in us-east-1c`))
		Expect(notes).To(ContainSubstring("the walk's node in us-east-1c is not in DNS"))
		// Asked anyway, that node fails open to its only rating target
		// (routing failover), which drops the SYN: 504.
		Expect(notes).To(ContainSubstring("the load balancer answered HTTP 504"))

		out, err = inNS(name, pod, append([]string{"iptables", "-D"}, rule...)...)
		Expect(err).NotTo(HaveOccurred(), out)
		Eventually(func() string { return health(name, pod) }, 30*time.Second, 100*time.Millisecond).Should(Equal("healthy"))
		passes(s, "D1-c")
	})

	It("answers us-east-1c again once rating's pod there is replaced by one with a new address (Route 53 follows the reloaded targets)", func() {
		var old string
		h, err := agent.ReadHealth(name)
		Expect(err).NotTo(HaveOccurred())
		for _, th := range h {
			if strings.Contains(th.Group, "rating") && th.AZ == "us-east-1c" {
				old = th.Object
			}
		}
		out, code := run(nil, "pod", "delete", "--lab", name, old)
		Expect(code).To(Equal(0), out)
		// The replacement is the group's us-east-1c target now, and healthy.
		Eventually(func() string {
			h, _ := agent.ReadHealth(name)
			for _, th := range h {
				if strings.Contains(th.Group, "rating") && th.AZ == "us-east-1c" && th.Object != old {
					return th.State
				}
			}
			return ""
		}, 30*time.Second, 100*time.Millisecond).Should(Equal("healthy"))
		fresh, err := lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(fresh.Close)
		run := passes(fresh, "D1-c")
		Expect(run.App.Object).NotTo(Equal(old))
		Expect(strings.Join(run.Report.Notes, "\n")).To(MatchRegexp(`answered portal\.example\.com with \[203\.0\.113\.\d+ 203\.0\.113\.\d+\], TTL 60`))
	})
})

// The NLB's passive check needs a target no node still sends to: with
// cross-zone on, node71 turning unhealthy leaves every node other targets.
var _ = Describe("nlb-instance with cross-zone on: the passive check", Ordered, Label("lb"), func() {
	const name = labPrefix + "nlbxz"
	var s *lab.Session
	BeforeAll(func() {
		b, err := os.ReadFile(topology("nlb-instance"))
		Expect(err).NotTo(HaveOccurred())
		text := strings.Replace(string(b), "    service.beta.kubernetes.io/aws-load-balancer-scheme: internal\n",
			"    service.beta.kubernetes.io/aws-load-balancer-scheme: internal\n"+
				"    service.beta.kubernetes.io/aws-load-balancer-attributes: load_balancing.cross_zone.enabled=true\n", 1)
		Expect(text).To(ContainSubstring("cross_zone.enabled=true"))
		file := filepath.Join(GinkgoT().TempDir(), "nlb-instance-crosszone.yaml")
		Expect(os.WriteFile(file, []byte(text), 0o644)).To(Succeed())
		upFile(file, name)
		s, err = lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
	})

	It("resets an established flow to a target that turns unhealthy while others stay healthy (the NLB's passive check)", func() {
		client, err := ns.Open(spec.NSName(name, "client"))
		Expect(err).NotTo(HaveOccurred())
		defer client.Close()
		nlb, err := ns.Open(spec.NSName(name, "nlb-web"))
		Expect(err).NotTo(HaveOccurred())
		defer nlb.Close()
		node71 := s.Topo.Node("node71").ENIs[0].IP
		// With cross-zone on, the us-east-1b node spreads over every
		// node: connect until a flow lands on node71, as conntrack in the
		// NLB's namespace says.
		var c net.Conn
		for try := 0; try < 50 && c == nil; try++ {
			var conn net.Conn
			Expect(client.Do(func() error {
				var err error
				conn, err = net.DialTimeout("tcp4", "192.168.102.4:80", 3*time.Second)
				return err
			})).To(Succeed())
			port := uint16(conn.LocalAddr().(*net.TCPAddr).Port)
			flows, err := nlb.NL.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
			Expect(err).NotTo(HaveOccurred())
			for _, f := range flows {
				if f.Forward.SrcPort == port && f.Reverse.SrcIP.Equal(node71.AsSlice()) {
					c = conn
				}
			}
			if c == nil {
				conn.Close()
			}
		}
		Expect(c).NotTo(BeNil(), "no flow landed on node71 in 50 connections")
		defer c.Close()
		r := bufio.NewReader(c)
		get := func() (*http.Response, error) {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
				return nil, err
			}
			resp, err := http.ReadResponse(r, nil)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return resp, err
		}
		resp, err := get()
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusOK))

		rule := []string{"PREROUTING", "-s", "192.168.102.0/24", "-p", "tcp", "--dport", "30080", "-j", "DROP"}
		out, err := inNS(name, "node71", append([]string{"iptables", "-t", "raw", "-I"}, rule...)...)
		Expect(err).NotTo(HaveOccurred(), out)
		DeferCleanup(func() {
			_, _ = inNS(name, "node71", append([]string{"iptables", "-t", "raw", "-D"}, rule...)...)
			Eventually(func() string { return health(name, "node71") }, 30*time.Second, 100*time.Millisecond).Should(Equal("healthy"))
		})
		Eventually(func() string { return health(name, "node71") }, 30*time.Second, 100*time.Millisecond).Should(Equal("unhealthy"))
		// The reset leaves the NLB by the us-east-1b ENI, eth1, which the
		// client's packet came in on.
		dump := exec.Command("ip", "netns", "exec", spec.NSName(name, "nlb-web"), "tcpdump", "-c", "1", "-nni", "eth1", "-Q", "out",
			"tcp[tcpflags] & tcp-rst != 0 and dst host 192.168.50.10")
		dumped := &syncBuffer{}
		dump.Stdout, dump.Stderr = dumped, dumped
		Expect(dump.Start()).To(Succeed())
		defer func() { _ = dump.Process.Kill() }()
		Eventually(func() string { return dumped.String() }, 5*time.Second, 20*time.Millisecond).Should(ContainSubstring("listening on eth1"))
		// The health checks from the NLB are dropped; the client's own flow
		// is not, yet the NLB resets it now that its target is unhealthy and
		// no node needs it (the other AZs' targets are healthy and
		// cross-zone is on, so no node fails open to it).
		_, err = get()
		Expect(err).To(MatchError(ContainSubstring("connection reset by peer")))
		done := make(chan error, 1)
		go func() { done <- dump.Wait() }()
		Eventually(done, 5*time.Second).Should(Receive(BeNil()), "no reset left the NLB's eth1: %s", dumped)
		Expect(dumped.String()).To(ContainSubstring("192.168.102.4.80 > 192.168.50.10"))
	})

})
