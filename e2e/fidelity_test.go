package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

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
