//go:build linux

package netfilter_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/netfilter/nftwire"
	"github.com/labctl/labctl/lab/ns"
)

// equivNS makes a scratch namespace for the test, deleted at its end.
func equivNS(t *testing.T, suffix string) *ns.NS {
	t.Helper()
	name := fmt.Sprintf("lc.t-nftwire-%d-%s", os.Getpid(), suffix)
	h, err := ns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := ns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	return h
}

// kernelDump is what the kernel holds of kube-proxy's table: nft's listing
// with handles, and the kernel's raw netlink dump of the table, its chains,
// rules, sets and elements (every attribute, including user data nft
// would not print), one hex line per message.
func kernelDump(t *testing.T, h *ns.NS) (listing, raw string) {
	t.Helper()
	run := func(args ...string) string {
		var out, stderr bytes.Buffer
		err := h.Do(func() error {
			cmd := exec.Command("nft", args...)
			cmd.Stdout, cmd.Stderr = &out, &stderr
			return cmd.Run()
		})
		if err != nil {
			t.Fatalf("nft %s in %s: %v: %s", strings.Join(args, " "), h, err, stderr.String())
		}
		return out.String() + stderr.String()
	}
	listing = run("-a", "list", "table", "ip", "kube-proxy")
	var msgs [][]byte
	err := h.Do(func() error {
		c, err := nftwire.Open()
		if err != nil {
			return err
		}
		defer c.Close()
		msgs, err = c.DumpTable("kube-proxy")
		return err
	})
	if err != nil {
		t.Fatalf("dump in %s: %v", h, err)
	}
	var sb strings.Builder
	elems := map[string][]string{} // per set, sorted below
	var sets []string
	for _, m := range msgs {
		if binary.NativeEndian.Uint16(m) != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWSETELEM {
			fmt.Fprintf(&sb, "%x\n", m)
			continue
		}
		// A hash set dumps its elements in hash order, which a per-set
		// random seed decides: compare them sorted.
		ad, err := netlink.NewAttributeDecoder(m[2+4:])
		if err != nil {
			t.Fatal(err)
		}
		var set string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_ELEM_LIST_SET:
				set = ad.String()
				if _, ok := elems[set]; !ok {
					sets = append(sets, set)
					elems[set] = []string{}
				}
			case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					for nad.Next() {
						elems[set] = append(elems[set], fmt.Sprintf("%x", nad.Bytes()))
					}
					return nil
				})
			}
		}
	}
	for _, set := range sets {
		slices.Sort(elems[set])
		fmt.Fprintf(&sb, "set %s:\n  %s\n", set, strings.Join(elems[set], "\n  "))
	}
	return listing, sb.String()
}

// churnServices is a random cluster: ClusterIP, NodePort, external and
// load balancer IPs (some with source ranges), Local policies, session
// affinity, Services without endpoints, TCP, UDP and SCTP.
func churnServices(rng *rand.Rand, n int) []kubeproxy.ServicePort {
	svcs := make([]kubeproxy.ServicePort, n)
	for i := range svcs {
		s := &svcs[i]
		s.Namespace, s.Name, s.PortName = "ns", fmt.Sprintf("svc-%d", i), "p"
		s.Protocol = []string{"TCP", "TCP", "UDP", "SCTP"}[rng.IntN(4)]
		s.ClusterIP = netip.AddrFrom4([4]byte{172, 30, byte(i >> 8), byte(i)})
		s.Port = int32(80 + rng.IntN(3))
		mutate(rng, s, i)
	}
	return svcs
}

// mutate gives a Service a new random shape and endpoints.
func mutate(rng *rand.Rand, s *kubeproxy.ServicePort, i int) {
	s.NodePort, s.ExternalIPs, s.LoadBalancerIPs, s.LoadBalancerSourceRanges = 0, nil, nil, nil
	s.ExternalPolicyLocal, s.InternalPolicyLocal, s.SessionAffinityClientIP, s.StickyMaxAgeSeconds = false, false, false, 0
	if rng.IntN(2) == 0 {
		s.NodePort = int32(30000 + i)
	}
	if rng.IntN(4) == 0 {
		s.ExternalIPs = []netip.Addr{netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})}
	}
	if rng.IntN(4) == 0 {
		s.NodePort = int32(30000 + i)
		s.LoadBalancerIPs = []netip.Addr{netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})}
		switch rng.IntN(3) {
		case 1:
			s.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
		case 2:
			s.LoadBalancerSourceRanges = []string{"203.0.113.0/25", "192.0.2.0/24"}
		}
		s.ExternalPolicyLocal = rng.IntN(2) == 0
	}
	s.InternalPolicyLocal = rng.IntN(6) == 0
	if rng.IntN(5) == 0 {
		s.SessionAffinityClientIP, s.StickyMaxAgeSeconds = true, 10800
	}
	s.Endpoints = nil
	for j := range rng.IntN(4) {
		s.Endpoints = append(s.Endpoints, kubeproxy.Endpoint{
			IP:   netip.AddrFrom4([4]byte{10, byte(1 + j), byte(rng.IntN(4)), byte(i)}),
			Port: 8080, Ready: rng.IntN(8) != 0, Serving: true, Local: rng.IntN(2) == 0,
		})
	}
}

// The netlink path (nftwire) and `nft -f` leave the same kernel state for
// the same kube-proxy syncs: a full sync and then random partial syncs are
// applied to two namespaces, one with nft only, one with the netlink path
// wherever it encodes the program, and after each sync nft's listing (with
// handles) and the kernel's raw netlink dump of the table are equal.
func TestNetlinkPathLeavesTheKernelStateNFTLeaves(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes two network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	a, b := equivNS(t, "a"), equivNS(t, "b")
	cfg := kubeproxy.NFTConfig{
		Config: kubeproxy.Config{NodeName: "node", NodeIPs: []netip.Addr{netip.MustParseAddr("192.168.0.2")},
			ClusterCIDR: "10.0.0.0/8", MasqueradeMark: "0x4000",
			NodePortAddresses: []netip.Prefix{netip.MustParsePrefix("192.168.0.2/32")}},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")},
	}
	pa, err := kubeproxy.NewNFTProxier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := kubeproxy.NewNFTProxier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(15, 1))
	svcs := churnServices(rng, 40)
	viaNFT, viaNetlink := netfilter.NFT{Exec: true}, netfilter.NFT{}
	now := time.Unix(1_800_000_000, 0)
	before, beforeExec := netfilter.NFTStats.Netlink.Load(), netfilter.NFTStats.Exec.Load()
	for step := range 40 {
		ra, err := pa.Sync(svcs, now)
		if err != nil {
			t.Fatal(err)
		}
		rb, err := pb.Sync(svcs, now)
		if err != nil {
			t.Fatal(err)
		}
		if ra.Tx.String() != rb.Tx.String() {
			t.Fatalf("step %d: the two proxiers rendered different syncs", step)
		}
		apply := func(nft netfilter.NFT, h *ns.NS, p *kubeproxy.NFTProxier, r *kubeproxy.NFTSyncResult) {
			var cerr error
			if r.Cleanup != nil {
				cerr = nft.Apply(h, r.Cleanup.String())
			}
			err := nft.Apply(h, r.Tx.String())
			p.Applied(r, cerr, err)
			if cerr != nil || err != nil {
				t.Fatalf("step %d in %s: cleanup: %v; sync: %v\n%s", step, h, cerr, err, r.Tx.String())
			}
		}
		apply(viaNFT, a, pa, ra)
		apply(viaNetlink, b, pb, rb)
		la, rawA := kernelDump(t, a)
		lb, rawB := kernelDump(t, b)
		if diff := cmp.Diff(la, lb); diff != "" {
			t.Fatalf("step %d (full %v): nft's listing differs (-nft +netlink):\n%s\nsync:\n%s", step, ra.Full, diff, ra.Tx.String())
		}
		if diff := cmp.Diff(rawA, rawB); diff != "" {
			t.Fatalf("step %d (full %v): the kernel's netlink dump differs (-nft +netlink):\n%s\nsync:\n%s", step, ra.Full, diff, ra.Tx.String())
		}
		// Change a few Services, sometimes only one endpoint.
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(svcs))
			if rng.IntN(2) == 0 && len(svcs[i].Endpoints) > 0 {
				svcs[i].Endpoints[0].IP = netip.AddrFrom4([4]byte{10, 9, byte(step), byte(i)})
			} else {
				mutate(rng, &svcs[i], i)
			}
		}
		now = now.Add(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
	}
	// The masquerade-mark rules, which only full syncs write (through nft),
	// rewritten by one program each way.
	marks := "flush chain ip kube-proxy mark-for-masquerade\nadd rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000\n" +
		"flush chain ip kube-proxy masquerading\nadd rule ip kube-proxy masquerading mark and 0x4000 == 0 return\n" +
		"add rule ip kube-proxy masquerading mark set mark xor 0x4000\n"
	if err := viaNFT.Apply(a, marks); err != nil {
		t.Fatal(err)
	}
	netlinkBefore := netfilter.NFTStats.Netlink.Load()
	if err := viaNetlink.Apply(b, marks); err != nil {
		t.Fatal(err)
	}
	if netfilter.NFTStats.Netlink.Load() != netlinkBefore+1 {
		t.Fatal("the mark rules did not go through the netlink path")
	}
	la, rawA := kernelDump(t, a)
	lb, rawB := kernelDump(t, b)
	if diff := cmp.Diff(la, lb); diff != "" {
		t.Fatalf("mark rules: nft's listing differs (-nft +netlink):\n%s", diff)
	}
	if diff := cmp.Diff(rawA, rawB); diff != "" {
		t.Fatalf("mark rules: the kernel's netlink dump differs (-nft +netlink):\n%s", diff)
	}
	n := netfilter.NFTStats.Netlink.Load() - before
	t.Logf("%d programs through the netlink path, %d through nft", n, netfilter.NFTStats.Exec.Load()-beforeExec)
	if n < 20 {
		t.Errorf("only %d of the partial syncs went through the netlink path; the comparison proved little", n)
	}
}
