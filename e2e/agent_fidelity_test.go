package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/fault"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// curlIn runs curl in a lab object's namespace and returns its output and
// the HTTP status it printed last (-w).
func curlIn(name, object string, args ...string) (body string, status string) {
	GinkgoHelper()
	out, err := inNS(name, object, append([]string{"curl", "-s", "-m", "8", "-w", "\n%{http_code}"}, args...)...)
	Expect(err).NotTo(HaveOccurred(), out)
	i := strings.LastIndex(out, "\n")
	return out[:i], strings.TrimSpace(out[i+1:])
}

// podOn is the lab's pod of a Deployment on a node.
func podOn(s *lab.Session, deployment, node string) string {
	GinkgoHelper()
	for _, p := range s.Topo.Pods {
		if p.Manifest == "Deployment default/"+deployment && p.Node == node {
			return p.Name
		}
	}
	Fail("no pod of " + deployment + " on " + node)
	return ""
}

var _ = Describe("the ALB as a proxy: headers and bodies pass untouched, no retry", Ordered, Label("lb", "agent-fidelity"), func() {
	const name = labPrefix + "albpass"
	var s *lab.Session
	BeforeAll(func() { s = session("alb-ingress", name) })

	It("the target sees exactly the client's headers plus X-Forwarded-For/-Proto/-Port and X-Amzn-Trace-Id", func() {
		body, status := curlIn(name, "client", "-H", "X-Custom: kept", "-H", "Accept:", "-A", "lab-client/1",
			"http://192.168.102.4/order")
		Expect(status).To(Equal("200"), body)
		var a traffic.AppAnswer
		Expect(json.Unmarshal([]byte(body), &a)).To(Succeed(), body)
		var got []string
		for k := range a.Headers {
			got = append(got, k)
		}
		sort.Strings(got)
		Expect(got).To(Equal([]string{"User-Agent", "X-Amzn-Trace-Id", "X-Custom", "X-Forwarded-For", "X-Forwarded-Port",
			"X-Forwarded-Proto"}), "no Accept-Encoding the client never sent")
		Expect(a.Headers["X-Forwarded-For"]).To(Equal([]string{"192.168.50.10"}))
		Expect(a.Headers["User-Agent"]).To(Equal([]string{"lab-client/1"}))
	})

	It("answers 502, and sends nothing again, when a target closes a kept-alive connection as a request comes", func() {
		// The targets' keep-alive shorter than the ALB's idle timeout, and
		// their FINs late to the ALB (fault target-keepalive-short).
		_, err := fault.Inject(s, "target-keepalive-short")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _, _ = fault.Clear(s) })
		// Fresh connections to both pods (round robin), then idle past the
		// target's keep-alive, while its FIN has not reached the ALB.
		for range 2 {
			_, status := curlIn(name, "client", "http://192.168.102.4/rating")
			Expect(status).To(Equal("200"))
		}
		time.Sleep(fault.ShortKeepAlive + walk.KeepAliveMargin)
		body, status := curlIn(name, "client", "http://192.168.102.4/rating")
		Expect(status).To(Equal("502"), "the ALB reused a connection the target closed: "+body)
		Expect(body).To(ContainSubstring("502 Bad Gateway"))
		// With the fault cleared the same sequence answers.
		_, err = fault.Clear(s)
		Expect(err).NotTo(HaveOccurred())
		for range 2 {
			_, status := curlIn(name, "client", "http://192.168.102.4/rating")
			Expect(status).To(Equal("200"))
		}
		time.Sleep(fault.ShortKeepAlive + walk.KeepAliveMargin)
		_, status = curlIn(name, "client", "http://192.168.102.4/rating")
		Expect(status).To(Equal("200"))
	})
})

var _ = Describe("per-AZ fail-open with cross-zone off", Ordered, Label("lb", "agent-fidelity"), func() {
	Context("ALB (alb-ingress with the rating target group's cross-zone off)", Ordered, func() {
		const name = labPrefix + "albzone"
		var s *lab.Session
		BeforeAll(func() {
			src, err := os.ReadFile(topology("alb-ingress"))
			Expect(err).NotTo(HaveOccurred())
			const at = "    alb.ingress.kubernetes.io/target-type: ip\n"
			variant := strings.Replace(string(src), at, at+"    alb.ingress.kubernetes.io/target-group-attributes: load_balancing.cross_zone.enabled=false\n", 1)
			Expect(variant).NotTo(Equal(string(src)), "the Ingress annotation to extend moved")
			file := filepath.Join(GinkgoT().TempDir(), "alb-ingress-zonal.yaml")
			Expect(os.WriteFile(file, []byte(variant), 0o644)).To(Succeed())
			upFile(file, name)
			s, err = lab.OpenSession(name)
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(s.Close)
		})

		It("routes us-east-1b's requests to its only rating target once it is unhealthy: a refusing target gives 502, not 503", func() {
			pod := podOn(s, "rating", "node71") // us-east-1b
			rule := []string{"INPUT", "-p", "tcp", "--dport", "80", "-j", "REJECT", "--reject-with", "tcp-reset"}
			out, err := inNS(name, pod, append([]string{"iptables", "-I"}, rule...)...)
			Expect(err).NotTo(HaveOccurred(), out)
			DeferCleanup(func() {
				out, err := inNS(name, pod, append([]string{"iptables", "-D"}, rule...)...)
				Expect(err).NotTo(HaveOccurred(), out)
			})
			Eventually(func() string { return health(name, pod) }, 30*time.Second, 100*time.Millisecond).Should(Equal("unhealthy"))
			body, status := curlIn(name, "client", "http://192.168.102.4/rating")
			Expect(status).To(Equal("502"), "the us-east-1b node fails open to its unhealthy target: "+body)
			_, status = curlIn(name, "client", "http://192.168.103.4/rating")
			Expect(status).To(Equal("200"), "us-east-1c's node keeps to its healthy target")
			_, status = curlIn(name, "client", "http://192.168.101.4/rating")
			Expect(status).To(Equal("503"), "us-east-1a has no rating target at all")
			out, code := run(nil, "lb", "--lab", name)
			Expect(code).To(Equal(0), out)
			Expect(out).To(MatchRegexp(`node us-east-1b .*, out of DNS: target group alb-\S*rating\S* has cross-zone off and no healthy target in us-east-1b`))
		})
	})

	Context("NLB (nlb-instance: cross-zone is off by default for an NLB)", Ordered, func() {
		const name = labPrefix + "nlbzone"
		BeforeAll(func() { session("nlb-instance", name) })

		It("keeps serving through us-east-1b's node once its only target fails its health checks", func() {
			rule := []string{"PREROUTING", "-s", "192.168.96.0/19", "-p", "tcp", "--dport", "30080", "-j", "DROP"}
			out, err := inNS(name, "node71", append([]string{"iptables", "-t", "raw", "-I"}, rule...)...)
			Expect(err).NotTo(HaveOccurred(), out)
			DeferCleanup(func() {
				out, err := inNS(name, "node71", append([]string{"iptables", "-t", "raw", "-D"}, rule...)...)
				Expect(err).NotTo(HaveOccurred(), out)
			})
			Eventually(func() string { return health(name, "node71") }, 30*time.Second, 100*time.Millisecond).Should(Equal("unhealthy"))
			Expect(health(name, "node51")).To(Equal("healthy"))
			Expect(connects(name, "client", "192.168.102.4:80")).To(BeTrue(), "the us-east-1b node fails open to node71")
			out, code := run(nil, "lb", "--lab", name)
			Expect(code).To(Equal(0), out)
			Expect(out).To(MatchRegexp(`node us-east-1b .*, out of DNS: target group \S+ has cross-zone off and no healthy target in us-east-1b`))
		})
	})
})
