package plan

import (
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// nodeSoftwareDump is a node's sysctls (without the per-pod host veths,
// whose names are hashes) and the lines of its restore that kubelet and
// aws-node own: kubelet's chains and every AWS chain and rule. kube-proxy's
// rules have their own goldens in lab/kubeproxy.
func nodeSoftwareDump(n *Namespace) string {
	var b strings.Builder
	b.WriteString("# sysctls (key=value; \"late\" ones are written after the restore)\n")
	for _, s := range n.Sysctls {
		if strings.HasPrefix(s.Key, "net/ipv4/conf/eni") {
			continue
		}
		b.WriteString(s.Key + "=" + s.Value)
		if s.Optional {
			b.WriteString(" optional")
		}
		if s.AfterIptables {
			b.WriteString(" late")
		}
		b.WriteString("\n")
	}
	b.WriteString("# iptables: kubelet's chains and aws-node's rules\n")
	for _, l := range strings.Split(n.Iptables, "\n") {
		switch {
		case strings.HasPrefix(l, "*"),
			strings.HasPrefix(l, ":KUBE-IPTABLES-HINT "), strings.HasPrefix(l, ":KUBE-KUBELET-CANARY "),
			strings.HasPrefix(l, ":AWS-"),
			strings.HasPrefix(l, "-A ") && strings.Contains(l, "AWS"):
			b.WriteString(l + "\n")
		}
	}
	b.WriteString("# nft: aws-node's table (v1.23+ on nf_tables nodes)\n")
	if i := strings.Index(n.NFT, "table ip aws-cni {"); i >= 0 {
		b.WriteString(n.NFT[i:])
	}
	return b.String()
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "# ") || strings.HasPrefix(l, "# sysctls") || strings.HasPrefix(l, "# iptables") || strings.HasPrefix(l, "# nft") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestNodeSoftwareStateMatchesTheModelledReleases is the golden per backend
// and VPC CNI line: v1.22 on nft nodes (the long connmark comment in
// iptables), v1.23 on legacy nodes (the short one, still iptables) and v1.23
// on nft nodes (connmark in the native table ip aws-cni, SNAT and mangle in
// iptables); all get the AL2023 AMI's sysctls, kube-proxy's conntrack
// timeouts and kubelet's chains.
func TestNodeSoftwareStateMatchesTheModelledReleases(t *testing.T) {
	for _, c := range []struct{ backend, version, golden string }{
		{spec.IptablesNFT, "v1.22", "testdata/node-nft-v1.22.golden"},
		{spec.IptablesLegacy, "v1.23", "testdata/node-legacy-v1.23.golden"},
		{spec.IptablesNFT, "v1.23", "testdata/node-nft-v1.23.golden"},
	} {
		t.Run(c.backend+"-"+c.version, func(t *testing.T) {
			top := podNetworking(t)
			top.Iptables, top.VPCCNI.Version = c.backend, c.version
			if errs := top.Validate(); errs != nil {
				t.Fatal(errs)
			}
			want, err := os.ReadFile(c.golden)
			if err != nil {
				t.Fatal(err)
			}
			got := nodeSoftwareDump(Build(top, "x").NS("node51"))
			if stripComments(string(want)) != got {
				t.Errorf("node51 differs from %s\n got:\n%s", c.golden, got)
			}
		})
	}
}

func TestEveryHostVethIsLooseLikeANewInterfaceOnAL2023(t *testing.T) {
	top := podNetworking(t)
	p := Build(top, "x")
	for _, pd := range top.Pods {
		key := "net/ipv4/conf/" + spec.HostVethName(pd.Namespace, pd.Name) + "/rp_filter"
		if v, ok := sysctlValue(p.NS(pd.Node), key); !ok || v != "2" {
			t.Errorf("%s: %s = %q (set %v), want 2", pd.Node, key, v, ok)
		}
		if v, _ := sysctlValue(p.NS(pd.Name), "net/ipv4/conf/eth0/rp_filter"); v != "2" {
			t.Errorf("%s: eth0 rp_filter %q, want 2", pd.Name, v)
		}
	}
	// A pod started in a running lab brings the same write.
	_, _, node := PodPlan(top, "x", "pod61")
	if v, _ := sysctlValue(node, "net/ipv4/conf/"+spec.HostVethName("default", "pod61")+"/rp_filter"); v != "2" {
		t.Errorf("PodPlan's node part sets pod61's veth rp_filter to %q, want 2", v)
	}
}

func TestNodeWritesNoHostWideSysctl(t *testing.T) {
	p := Build(podNetworking(t), "x")
	for _, n := range p.Namespaces {
		for _, s := range n.Sysctls {
			for _, h := range HostWideSysctls {
				if s.Key == h {
					t.Errorf("%s writes host-wide %s", n.Name, h)
				}
			}
		}
	}
}

func TestConntrackKeysAreWrittenAfterTheRestoreLoadsConntrack(t *testing.T) {
	for _, s := range Build(podNetworking(t), "x").NS("node51").Sysctls {
		if strings.HasPrefix(s.Key, "net/netfilter/") != s.AfterIptables {
			t.Errorf("%s: AfterIptables %v; conntrack keys exist only after the restore", s.Key, s.AfterIptables)
		}
	}
}

func TestNFAcctComesFromTheProbedKernel(t *testing.T) {
	top := podNetworking(t)
	if n := strings.Count(Build(top, "x").NS("node51").Iptables, "-m nfacct"); n != 0 {
		t.Errorf("a kernel without nfnetlink_acct got %d nfacct matches", n)
	}
	if !strings.Contains(BuildFor(top, "x", Kernel{NFAcct: true}).NS("node51").Iptables,
		"--nfacct-name ct_state_invalid_dropped_pkts") {
		t.Error("a kernel with nfnetlink_acct has no ct_state_invalid_dropped_pkts match, as kube-proxy v1.30+ writes")
	}
}

func sysctlValue(n *Namespace, key string) (string, bool) {
	if n == nil {
		return "", false
	}
	for _, s := range n.Sysctls {
		if s.Key == key {
			return s.Value, true
		}
	}
	return "", false
}
