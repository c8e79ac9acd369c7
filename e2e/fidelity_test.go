package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

// awsLines are the rules of a restore payload or a save that carry an AWS
// comment, by table, in order.
func awsLines(dump string) map[string][]string {
	out := map[string][]string{}
	table := ""
	for _, l := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A ") && strings.Contains(l, `"AWS`):
			out[table] = append(out[table], l)
		}
	}
	return out
}

// readBack reads every sysctl the plan lists for a namespace from inside it
// and returns the keys whose value differs, and how many keys the host's own
// namespace holds with another value (read, never written).
func readBack(n *plan.Namespace) (diffs []string, hostDiffers int) {
	GinkgoHelper()
	h, err := ns.Open(n.Name)
	Expect(err).NotTo(HaveOccurred())
	defer h.Close()
	for _, s := range n.Sysctls {
		var got string
		err := h.Do(func() error {
			var err error
			got, err = ns.ReadSysctl(s.Key)
			return err
		})
		if s.Optional && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil || got != s.Value {
			diffs = append(diffs, fmt.Sprintf("%s: %s = %q (%v), plan says %q", n.Object, s.Key, got, err, s.Value))
		}
		if host, err := os.ReadFile("/proc/sys/" + s.Key); err == nil && strings.TrimSpace(string(host)) != s.Value {
			hostDiffers++
		}
	}
	return diffs, hostDiffers
}

var _ = Describe("node fidelity: nodes hold the AL2023 EKS AMI's sysctls and the modelled node software's rules", Label("fidelity"), func() {
	for _, c := range []struct{ backend, version, save string }{
		{spec.IptablesNFT, "v1.22", "iptables-nft-save"},
		{spec.IptablesLegacy, "v1.23", "iptables-legacy-save"},
	} {
		It(fmt.Sprintf("on %s with VPC CNI %s: every planned sysctl reads back from each node and pod, and kubelet's chains and aws-node's rules are in the kernel", c.backend, c.version), func() {
			name := labPrefix + "fid" + c.backend
			src, err := os.ReadFile(topology("pod-networking"))
			Expect(err).NotTo(HaveOccurred())
			file := filepath.Join(GinkgoT().TempDir(), "pod-networking.yaml")
			head := fmt.Sprintf("iptables: %s\nvpcCNI: {version: %s}\n", c.backend, c.version)
			Expect(os.WriteFile(file, append([]byte(head), src...), 0o644)).To(Succeed())
			top, err := spec.Load(file)
			Expect(err).NotTo(HaveOccurred())
			upFile(file, name)
			p := plan.Build(top, name)

			var diffs []string
			checked, hostDiffers := 0, 0
			for _, n := range p.Namespaces {
				if n.Role != plan.RoleNode && n.Role != plan.RolePod {
					continue
				}
				d, h := readBack(n)
				diffs, hostDiffers, checked = append(diffs, d...), hostDiffers+h, checked+len(n.Sysctls)
			}
			Expect(diffs).To(BeEmpty())
			Expect(checked).To(BeNumerically(">", 60))
			// How much this proves depends on the host: keys it holds with
			// other values would have leaked into a node that copied them.
			fmt.Fprintf(GinkgoWriter, "%d sysctls read back; the host's own namespace holds %d of them with another value\n", checked, hostDiffers)

			for _, node := range []string{"node51", "node71", "node81"} {
				save := iptablesSave(name, node, c.save)
				Expect(save).To(ContainSubstring(":KUBE-IPTABLES-HINT - [0:0]"))
				Expect(strings.Count(save, ":KUBE-KUBELET-CANARY - [0:0]")).To(Equal(3), "mangle, nat and filter")
				Expect(awsLines(save)).To(Equal(awsLines(p.NS(node).Iptables)), node+"'s aws-node rules")
			}
			comment := `--comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN`
			if c.version == "v1.23" {
				comment = `--comment "AWS CONNMARK CHAIN" -j RETURN`
			}
			Expect(iptablesSave(name, "node51", c.save)).To(ContainSubstring(comment))
		})
	}
})

// nfacctCounters dumps a lab node's nfacct objects by name.
func nfacctCounters(labName, node string) map[string]kernel.NFAcctCounter {
	GinkgoHelper()
	h, err := ns.Open(spec.NSName(labName, node))
	Expect(err).NotTo(HaveOccurred())
	defer h.Close()
	list, err := kernel.NFAcctList(h)
	Expect(err).NotTo(HaveOccurred())
	out := map[string]kernel.NFAcctCounter{}
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

var _ = Describe("nfacct: kube-proxy's counters are decided from the node kernel", Label("fidelity"), func() {
	for _, c := range []struct{ backend, save string }{
		{spec.IptablesNFT, "iptables-nft-save"},
		{spec.IptablesLegacy, "iptables-legacy-save"},
	} {
		It(fmt.Sprintf("on %s: every node holds kube-proxy's nfacct objects and matches, the host none, a localhost NodePort counts, and a pod delete's sync keeps them", c.backend), func() {
			name := labPrefix + "nfacct" + c.backend
			src, err := os.ReadFile(topology("nodeport"))
			Expect(err).NotTo(HaveOccurred())
			file := filepath.Join(GinkgoT().TempDir(), "nodeport.yaml")
			Expect(os.WriteFile(file, append([]byte("iptables: "+c.backend+"\n"), src...), 0o644)).To(Succeed())
			upFile(file, name)

			for _, node := range []string{"node51", "node71", "node81"} {
				save := iptablesSave(name, node, c.save)
				Expect(save).To(MatchRegexp(`-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name +ct_state_invalid_dropped_pkts -j DROP`), node)
				Expect(save).To(MatchRegexp(`-A KUBE-NODEPORTS -d 127\.0\.0\.0/8 .*--dport 30080 -m nfacct --nfacct-name +localhost_nps_accepted_pkts -j KUBE-EXT-`), node)
				Expect(nfacctCounters(name, node)).To(HaveKey("ct_state_invalid_dropped_pkts"), node)
				Expect(nfacctCounters(name, node)).To(HaveKey("localhost_nps_accepted_pkts"), node)
			}
			// nfacct objects are per network namespace: none in the host's.
			host, err := kernel.NFAcctListHere()
			Expect(err).NotTo(HaveOccurred())
			for _, h := range host {
				Expect(kernel.NFAcctObjects).NotTo(ContainElement(h.Name), "the host's namespace holds a kube-proxy nfacct object")
			}

			// A localhost NodePort connection is counted in the node it is
			// made in, and in no other.
			before51, before71 := nfacctCounters(name, "node51"), nfacctCounters(name, "node71")
			Expect(connects(name, "node51", "127.0.0.1:30080")).To(BeTrue())
			after51, after71 := nfacctCounters(name, "node51"), nfacctCounters(name, "node71")
			Expect(after51["localhost_nps_accepted_pkts"].Packets).To(Equal(before51["localhost_nps_accepted_pkts"].Packets+1), "one new connection, one packet through the nat rule")
			Expect(after51["localhost_nps_accepted_pkts"].Bytes).To(BeNumerically(">", before51["localhost_nps_accepted_pkts"].Bytes))
			Expect(after71["localhost_nps_accepted_pkts"]).To(Equal(before71["localhost_nps_accepted_pkts"]))

			// kube-proxy's sync after a pod delete is rendered by a Proxier
			// that probes nfacct again, so the filter rule keeps its match.
			top, err := spec.Load(file)
			Expect(err).NotTo(HaveOccurred())
			dns := ""
			for _, p := range top.Pods {
				if strings.HasPrefix(p.Name, "coredns-") {
					dns = p.Name
				}
			}
			Expect(dns).NotTo(BeEmpty(), "the topology's CoreDNS pods")
			out, code := run(nil, "pod", "delete", "--lab", name, dns)
			Expect(code).To(Equal(0), out)
			Expect(iptablesSave(name, "node51", c.save)).To(MatchRegexp(`--ctstate INVALID -m nfacct --nfacct-name +ct_state_invalid_dropped_pkts -j DROP`))
		})
	}
})
