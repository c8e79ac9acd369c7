package plan

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

const differencesFile = "../../docs/differences.md"

// mustCheck are words that name state the plan writes: a line of
// differences.md that mentions one must say, in a check, what the plan holds.
var mustCheck = []string{"route_localnet", "rp_filter", "arp_ignore", "arp_announce", "proxy_delay",
	"accept_local", "send_redirects", "tcp_early_demux", "nf_conntrack_", "bridge-nf-call",
	"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY", "nfacct", "CONNMARK CHAIN", "aws-cni"}

var checkComment = regexp.MustCompile(`<!-- check: (.*?) -->`)

// docCheck verifies one check against the plan: "ROLE sysctl KEY=VALUE"
// (every namespace of the role writes it; {eni} and {veth} in a node key
// stand for each of its ENIs and each of its pods' host veths), "ROLE no-sysctl KEY", "ROLE iptables TEXT"
// (every namespace of the role's payload holds TEXT), "ROLE no-iptables TEXT",
// "ROLE nft TEXT" or "ROLE no-nft TEXT" (its nft program); "nftables ..."
// and "v1.23 ..." check the topology with kube-proxy's nftables mode or
// that VPC CNI version.
func docCheck(top *spec.Topology, p *Plan, check string) error {
	role, rest, _ := strings.Cut(strings.TrimSpace(check), " ")
	if role == spec.KubeProxyNFTables {
		// "nftables node sysctl ...": the same topology with kube-proxy in
		// nftables mode.
		nft := *top
		nft.KubeProxy.Mode = spec.KubeProxyNFTables
		return docCheck(&nft, Build(&nft, p.Lab), rest)
	}
	if strings.HasPrefix(role, "v1.") {
		// "v1.23 node nft ...": the same topology with that VPC CNI version.
		v := *top
		v.VPCCNI.Version = role
		if err := spec.ValidateVPCCNI(v.VPCCNI); err != nil {
			return err
		}
		return docCheck(&v, Build(&v, p.Lab), rest)
	}
	verb, arg, _ := strings.Cut(rest, " ")
	var nss []*Namespace
	for _, n := range p.Namespaces {
		if string(n.Role) == role {
			nss = append(nss, n)
		}
	}
	if len(nss) == 0 {
		return fmt.Errorf("no %q namespace in the plan", role)
	}
	for _, n := range nss {
		switch verb {
		case "sysctl":
			key, want, ok := strings.Cut(arg, "=")
			if !ok {
				return fmt.Errorf("%q: want KEY=VALUE", arg)
			}
			keys := []string{key}
			switch {
			case strings.Contains(key, "{veth}"):
				keys = nil
				for _, pd := range top.Pods {
					if pd.Node == n.Object {
						keys = append(keys, strings.ReplaceAll(key, "{veth}", spec.HostVethName(pd.Namespace, pd.Name)))
					}
				}
			case strings.Contains(key, "{eni}"):
				keys = nil
				for _, e := range top.Node(n.Object).ENIs {
					keys = append(keys, strings.ReplaceAll(key, "{eni}", spec.ENIName(*e.Index)))
				}
			}
			for _, k := range keys {
				if got, ok := sysctlValue(n, k); !ok || got != want {
					return fmt.Errorf("%s writes %s=%q (written: %v), the doc says %s", n.Object, k, got, ok, want)
				}
			}
		case "no-sysctl":
			if got, ok := sysctlValue(n, arg); ok {
				return fmt.Errorf("%s writes %s=%s, the doc says it does not", n.Object, arg, got)
			}
		case "iptables":
			if !strings.Contains(n.Iptables, arg) {
				return fmt.Errorf("%s's iptables have no %q", n.Object, arg)
			}
		case "no-iptables":
			if strings.Contains(n.Iptables, arg) {
				return fmt.Errorf("%s's iptables hold %q, the doc says they do not", n.Object, arg)
			}
		case "nft":
			if !strings.Contains(n.NFT, arg) {
				return fmt.Errorf("%s's nft program has no %q", n.Object, arg)
			}
		case "no-nft":
			if strings.Contains(n.NFT, arg) {
				return fmt.Errorf("%s's nft program holds %q, the doc says it does not", n.Object, arg)
			}
		default:
			return fmt.Errorf("unknown check %q (want sysctl, no-sysctl, iptables, no-iptables, nft or no-nft)", verb)
		}
	}
	return nil
}

// checkDifferences returns one error per failing check or unchecked line.
func checkDifferences(top *spec.Topology, p *Plan, doc string) []string {
	var errs []string
	for i, line := range strings.Split(doc, "\n") {
		where := fmt.Sprintf("%s:%d", differencesFile, i+1)
		if !strings.HasPrefix(line, "- ") {
			continue // checks and claims live in the list items
		}
		m := checkComment.FindAllStringSubmatch(line, -1)
		if len(m) == 0 {
			for _, w := range mustCheck {
				if strings.Contains(line, w) {
					errs = append(errs, fmt.Sprintf("%s: names %q but has no <!-- check: ... --> saying what the plan holds", where, w))
					break
				}
			}
		}
		for _, c := range m {
			for _, one := range strings.Split(c[1], "; ") {
				if err := docCheck(top, p, one); err != nil {
					errs = append(errs, fmt.Sprintf("%s: check %q: %v", where, one, err))
				}
			}
		}
	}
	return errs
}

func TestDifferencesMatchThePlan(t *testing.T) {
	doc, err := os.ReadFile(differencesFile)
	if err != nil {
		t.Fatal(err)
	}
	top := podNetworking(t)
	if n := strings.Count(string(doc), "<!-- check:"); n < 10 {
		t.Fatalf("%s has %d checks; the lines about sysctls and node chains lost theirs", differencesFile, n)
	}
	for _, e := range checkDifferences(top, Build(top, "x"), string(doc)) {
		t.Error(e)
	}
}

func TestDifferencesCheckCatchesAStaleLine(t *testing.T) {
	top := podNetworking(t)
	p := Build(top, "x")
	stale := "- The lab does not set route_localnet. <!-- check: node no-sysctl net/ipv4/conf/all/route_localnet -->\n" +
		"- Nodes keep the host's rp_filter.\n" +
		"- x <!-- check: node sysctl net/ipv4/conf/{veth}/rp_filter=1; node sysctl net/ipv4/neigh/{eni}/proxy_delay=3 -->\n" +
		"- y <!-- check: node iptables KUBE-NOPE; lb sysctl a=b; node frob x -->\n" +
		"- z <!-- check: v1.23 node no-nft table ip aws-cni; node nft table ip aws-cni; v1.9 node nft x -->\n"
	errs := checkDifferences(top, p, stale)
	if len(errs) != 10 {
		t.Fatalf("want 10 errors (wrong no-sysctl, unchecked line, wrong veth value, wrong ENI value, missing text, no lb, unknown verb, "+
			"v1.23's table, v1.22's missing table, unknown version), got %d:\n%s",
			len(errs), strings.Join(errs, "\n"))
	}
	if !strings.Contains(errs[0], "differences.md:1:") || !strings.Contains(errs[1], "differences.md:2:") {
		t.Errorf("errors must name the line: %v", errs[:2])
	}
}
