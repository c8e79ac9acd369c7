package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/traffic"
)

// kube-proxy deletes the UDP conntrack entries of an endpoint that went
// (pkg/proxy/conntrack CleanStaleEntries). A resolver that keeps its source
// port would otherwise keep sending to the deleted CoreDNS pod until it
// stops asking for 120 s.
var _ = Describe("stale UDP conntrack after a CoreDNS pod goes", Ordered, Label("services"), func() {
	const name = labPrefix + "udpct"
	var s *lab.Session
	BeforeAll(func() { s = session("clusterip", name) })

	// ask sends one query for kube-dns's own name from pod51's fixed port.
	ask := func(port uint16) (string, error) {
		src, err := s.NS("pod51")
		Expect(err).NotTo(HaveOccurred())
		dnsIP := s.Topo.ClusterDNSIP()
		c, err := traffic.DialFrom(src, "udp4", netip.Addr{}, port, netip.AddrPortFrom(dnsIP, 53), 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		m := new(dns.Msg)
		m.SetQuestion("kube-dns.kube-system.svc.cluster.local.", dns.TypeA)
		co := &dns.Conn{Conn: c}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := co.WriteMsg(m); err != nil {
			return "", err
		}
		r, err := co.ReadMsg()
		if err != nil {
			return "", err
		}
		if len(r.Answer) == 0 {
			return "", fmt.Errorf("no answer: %v", r)
		}
		return r.Answer[0].(*dns.A).A.String(), nil
	}

	It("answers from the same source port within 2 s after each CoreDNS pod is deleted in turn", func() {
		src, err := s.NS("pod51")
		Expect(err).NotTo(HaveOccurred())
		port, err := traffic.FreePort(src, "udp4", netip.Addr{})
		Expect(err).NotTo(HaveOccurred())
		_, err = ask(port)
		Expect(err).NotTo(HaveOccurred(), "the first query")
		var coredns []string
		for _, p := range s.Topo.Pods {
			if strings.HasPrefix(p.Name, "coredns-") {
				coredns = append(coredns, p.Name)
			}
		}
		Expect(coredns).To(HaveLen(2))
		// Whichever pod the first query was DNATed to, one of the two
		// deletes leaves the port's entry leading to a dead endpoint.
		total := 0
		for _, pod := range coredns {
			ch, err := churn.DeletePod(context.Background(), name, pod)
			Expect(err).NotTo(HaveOccurred())
			cleaned := 0
			for _, sy := range ch.Syncs {
				cleaned += sy.ConntrackDeleted
			}
			total += cleaned
			// Answered within the query's 2 s: the same port's entry no
			// longer leads to the deleted pod.
			_, err = ask(port)
			Expect(err).NotTo(HaveOccurred(), "after deleting %s (stale entries removed: %d)", pod, cleaned)
			t, _, err := lab.Load(name)
			Expect(err).NotTo(HaveOccurred())
			s.Topo = t
		}
		Expect(total).To(BeNumerically(">", 0), "no sync removed a stale UDP entry")
	})
})
