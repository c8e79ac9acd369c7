package e2e

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
)

func explained(run *lab.Run) string {
	var b strings.Builder
	for _, lines := range run.Explain {
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

var _ = Describe("walk --explain", Ordered, Label("explain"), func() {
	It("reads A3's reply decision from the kernel: rule 1536, table 2's default route, the router's neighbour entry", func() {
		s := session("pod-networking", labPrefix+"xa3")
		s.Explain = true
		run := passes(s, "A3")
		text := explained(run)
		Expect(text).To(ContainSubstring("node81: rule 1536: from 192.168.1.81 lookup 2 -> default via 192.168.1.1 dev eth1"))
		Expect(text).To(ContainSubstring("node81: neighbour 192.168.1.1 lladdr 0e:0d:59:99:72:b4"))
		Expect(text).To(ContainSubstring("pod51: neighbour 169.254.1.1 lladdr 06:2c:03:2e:df:06 PERMANENT on eth0"))
		Expect(text).NotTo(ContainSubstring("reported no trace"))
	})

	It("traces B3's NodePort through kube-proxy's chains on node51, with the DNAT, the masquerade and the conntrack entry", func() {
		s := session("nodeport", labPrefix+"xb3")
		s.Explain = true
		run := passes(s, "B3")
		text := explained(run)
		Expect(text).To(ContainSubstring("node51: iptables nat:KUBE-NODEPORTS JUMP KUBE-EXT-"))
		Expect(text).To(ContainSubstring("-j DNAT --to-destination 192.168.1.71:80"))
		Expect(text).To(ContainSubstring("-j MASQUERADE --random-fully"))
		Expect(text).To(MatchRegexp(`node51: conntrack tcp src=192\.168\.2\.10 dst=192\.168\.1\.50 sport=\d+ dport=30080 src=192\.168\.1\.71`))
		Expect(text).NotTo(ContainSubstring("reported no trace"))
	})
})
