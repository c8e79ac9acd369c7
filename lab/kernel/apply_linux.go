//go:build linux

package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
)

// NFT runs the nft programs of nftables-mode nodes.
var NFT netfilter.NFTProgram = netfilter.NFT{}

// handles holds the open namespaces of a build, by kernel name.
type handles struct {
	mu sync.Mutex
	m  map[string]*ns.NS
}

func (h *handles) get(name string) *ns.NS {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.m[name]
}

func (h *handles) put(n *ns.NS) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[n.Name] = n
}

func (h *handles) close() {
	for _, n := range h.m {
		n.Close()
	}
}

// workers bounds the parallel kernel work; namespace and veth creation
// scale with cores, and more goroutines only contend on the RTNL lock.
func workers() int { return 2 * runtime.NumCPU() }

// Apply creates everything in the plan. Each phase runs in parallel across
// namespaces; a goroutine only ever uses the handle of the namespace it owns.
func Apply(ctx context.Context, p *plan.Plan, nf netfilter.Backend) error {
	_, err := apply(ctx, func(plan.Kernel) *plan.Plan { return p }, nf, false)
	return err
}

// ApplyProbed is Apply for a plan rendered for the nodes' kernel, probed
// as the node software probes it once the namespaces exist: each node
// whose kube-proxy runs in iptables mode gets kube-proxy's nfacct objects
// (EnsureNFAcct), and the nodes' rules carry kube-proxy's nfacct matches
// only when every node has both. build renders the plan for a kernel;
// namespace names must not depend on it. It returns what the probe found.
func ApplyProbed(ctx context.Context, build func(plan.Kernel) *plan.Plan, nf netfilter.Backend) (plan.Kernel, error) {
	return apply(ctx, build, nf, true)
}

func apply(ctx context.Context, build func(plan.Kernel) *plan.Plan, nf netfilter.Backend, probe bool) (plan.Kernel, error) {
	hs := &handles{m: map[string]*ns.NS{}}
	defer hs.close()
	var k plan.Kernel
	p := build(k)

	if err := each(ctx, p.Namespaces, func(n *plan.Namespace) error {
		h, err := ns.Create(n.Name)
		if err != nil {
			return err
		}
		hs.put(h)
		return nil
	}); err != nil {
		return k, err
	}
	crash.Point(ctx, "namespaces")
	if probe {
		if k = probeNodes(ctx, p, hs); k != (plan.Kernel{}) {
			p = build(k)
		}
	}
	return k, configure(ctx, p, nf, hs)
}

// probeNodes creates kube-proxy's nfacct objects in every iptables-mode
// node (kube-proxy in nftables mode counts in nft and never uses nfacct)
// and says whether all of them have both. A node that fails is left with
// whatever it has, and kube-proxy there would write no nfacct match, as
// upstream logs the error and goes on.
func probeNodes(ctx context.Context, p *plan.Plan, hs *handles) plan.Kernel {
	var nodes []*plan.Namespace
	for _, n := range p.Namespaces {
		if n.Role == plan.RoleNode && n.NFT == "" {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) == 0 {
		return plan.Kernel{}
	}
	err := each(ctx, nodes, func(n *plan.Namespace) error { return EnsureNFAcct(hs.get(n.Name)) })
	return plan.Kernel{NFAcct: err == nil}
}

// configure builds the links and state of namespaces that exist.
func configure(ctx context.Context, p *plan.Plan, nf netfilter.Backend, hs *handles) error {
	for _, n := range p.Namespaces {
		for _, br := range n.Bridges {
			if err := addBridge(hs.get(n.Name), br); err != nil {
				return err
			}
		}
	}
	// Veths are created from the namespace of their A end, grouped so that
	// no two goroutines share a netlink handle.
	byNS := map[string][]plan.Veth{}
	var order []string
	for _, v := range p.Veths {
		if _, ok := byNS[v.A.NS]; !ok {
			order = append(order, v.A.NS)
		}
		byNS[v.A.NS] = append(byNS[v.A.NS], v)
	}
	if err := each(ctx, order, func(name string) error {
		for _, v := range byNS[name] {
			if err := addVeth(hs.get(v.A.NS), hs.get(v.B.NS), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	crash.Point(ctx, "veths")
	for _, n := range p.Namespaces {
		if len(n.Bridges) > 0 {
			if err := enslavePorts(hs.get(n.Name), n, p.Veths); err != nil {
				return err
			}
		}
	}
	return each(ctx, p.Namespaces, func(n *plan.Namespace) error {
		return Configure(hs.get(n.Name), n, nf)
	})
}

// each runs fn over items with bounded parallelism, stopping at the first
// error or when ctx is cancelled (Ctrl-C during up).
func each[T any](parent context.Context, items []T, fn func(T) error) error {
	g, ctx := errgroup.WithContext(parent)
	g.SetLimit(workers())
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			break
		}
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(it)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return parent.Err()
}

// addBridge is `ip link add br-x address M mtu N type bridge`.
func addBridge(r *ns.NS, br plan.Bridge) error {
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.MTU = br.Name, br.MAC, br.MTU
	if err := r.NL.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return fmt.Errorf("adding bridge %s in %s: %w", br.Name, r.Name, err)
	}
	return nil
}

// addVeth creates both ends at once, each in its namespace with its final
// name and MAC: `ip -n A link add NAME address M mtu N type veth peer name
// PEER address M2 netns B`.
func addVeth(a, b *ns.NS, v plan.Veth) error {
	la := netlink.NewLinkAttrs()
	la.Name, la.HardwareAddr, la.MTU = v.A.Name, v.A.MAC, v.A.MTU
	veth := &netlink.Veth{LinkAttrs: la, PeerName: v.B.Name, PeerHardwareAddr: v.B.MAC,
		PeerMTU: uint32(v.B.MTU), PeerNamespace: netlink.NsFd(int(b.Handle))}
	if err := a.NL.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding veth %s in %s (peer %s in %s): %w", v.A.Name, a.Name, v.B.Name, b.Name, err)
	}
	return nil
}

// enslavePorts puts the veth ends of namespace n on their bridges (ENIs on
// their subnet's bridge) with learning and unicast flooding off, and pins
// each MAC to its port, as the VPC fabric knows where every ENI is.
func enslavePorts(r *ns.NS, n *plan.Namespace, veths []plan.Veth) error {
	links, err := linkMap(r)
	if err != nil {
		return err
	}
	for _, v := range veths {
		if v.B.Master == "" || v.B.NS != n.Name {
			continue
		}
		port, br := links[v.B.Name], links[v.B.Master]
		if port == nil || br == nil {
			return fmt.Errorf("router port %s or bridge %s missing in %s", v.B.Name, v.B.Master, r.Name)
		}
		if err := r.NL.LinkSetMasterByIndex(port, br.Attrs().Index); err != nil {
			return fmt.Errorf("enslaving %s to %s in %s: %w", v.B.Name, v.B.Master, r.Name, err)
		}
		if err := r.NL.LinkSetLearning(port, false); err != nil {
			return fmt.Errorf("learning off on %s in %s: %w", v.B.Name, r.Name, err)
		}
		if err := r.NL.LinkSetFlood(port, false); err != nil {
			return fmt.Errorf("unicast flood off on %s in %s: %w", v.B.Name, r.Name, err)
		}
	}
	for _, br := range n.Bridges {
		for _, f := range br.FDB {
			port := links[f.Port]
			err := r.NL.NeighAppend(&netlink.Neigh{LinkIndex: port.Attrs().Index, Family: unix.AF_BRIDGE,
				Flags: netlink.NTF_MASTER, State: netlink.NUD_NOARP, HardwareAddr: f.MAC})
			if err != nil {
				return fmt.Errorf("bridge fdb add %s dev %s in %s: %w", f.MAC, f.Port, r.Name, err)
			}
		}
	}
	return nil
}

func linkMap(n *ns.NS) (map[string]netlink.Link, error) {
	ls, err := n.NL.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links in %s: %w", n.Name, err)
	}
	m := make(map[string]netlink.Link, len(ls))
	for _, l := range ls {
		m[l.Attrs().Name] = l
	}
	return m, nil
}

// Configure brings one namespace to its planned state, in the order the
// VPC CNI and the OS do it: sysctls, links up, addresses, routes (and the
// removal of a secondary ENI's subnet route), rules, neighbours, iptables,
// then the nft tables (kube-proxy in nftables mode, aws-node v1.23+ on nft).
func Configure(n *ns.NS, p *plan.Namespace, nf netfilter.Backend) error {
	links, err := linkMap(n)
	if err != nil {
		return err
	}
	if err := n.Do(func() error { return sysctlsAndOffload(p, links) }); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	for name, l := range links {
		if name == "lo" {
			continue
		}
		if err := n.NL.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up in %s: %w", name, n.Name, err)
		}
	}
	dev := func(name string) (int, error) {
		l, ok := links[name]
		if !ok {
			return 0, fmt.Errorf("no link %s in %s", name, n.Name)
		}
		return l.Attrs().Index, nil
	}
	for _, a := range p.Addrs {
		idx, err := dev(a.Dev)
		if err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: ipNet(a.Prefix.Addr().AsSlice(), a.Prefix.Bits())}
		if err := n.NL.AddrAdd(links[a.Dev], addr); err != nil {
			return fmt.Errorf("ip addr add %s dev %s (index %d) in %s: %w", a.Prefix, a.Dev, idx, n.Name, err)
		}
	}
	for _, r := range p.Routes {
		if err := route(n, r, dev); err != nil {
			return err
		}
	}
	for _, r := range p.Rules {
		if err := n.NL.RuleAdd(toRule(r)); err != nil {
			return fmt.Errorf("ip rule add %s in %s: %w", describeRule(r), n.Name, err)
		}
	}
	for _, nb := range p.Neighs {
		idx, err := dev(nb.Dev)
		if err != nil {
			return err
		}
		e := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_INET, IP: nb.IP.AsSlice()}
		if nb.Proxy {
			e.Flags = netlink.NTF_PROXY
		} else {
			e.State, e.HardwareAddr = netlink.NUD_PERMANENT, nb.MAC
		}
		if err := n.NL.NeighAdd(e); err != nil {
			return fmt.Errorf("ip neigh add %s dev %s in %s: %w", nb.IP, nb.Dev, n.Name, err)
		}
	}
	if p.Iptables != "" {
		if err := nf.Restore(n, p.Iptables, false); err != nil {
			return err
		}
	}
	if p.NFT != "" {
		if err := NFT.Apply(n, p.NFT); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(p.Sysctls, func(s plan.Sysctl) bool { return s.AfterIptables }) {
		if err := n.Do(func() error { return sysctls(p, true) }); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

func route(n *ns.NS, r plan.Route, dev func(string) (int, error)) error {
	if r.Unreachable {
		rt := &netlink.Route{Dst: ipNet(r.Dst.Addr().AsSlice(), r.Dst.Bits()), Table: r.Table, Type: unix.RTN_UNREACHABLE}
		if err := n.NL.RouteAdd(rt); err != nil {
			return fmt.Errorf("ip route add unreachable %s table %d in %s: %w", r.Dst, r.Table, n.Name, err)
		}
		return nil
	}
	idx, err := dev(r.Dev)
	if err != nil {
		return err
	}
	rt := &netlink.Route{LinkIndex: idx, Dst: ipNet(r.Dst.Addr().AsSlice(), r.Dst.Bits()), Table: r.Table}
	if r.Table == 0 {
		rt.Table = unix.RT_TABLE_MAIN
	}
	if r.Link {
		rt.Scope = netlink.SCOPE_LINK
	}
	if r.Gw.IsValid() {
		rt.Gw = r.Gw.AsSlice()
	}
	if r.Src.IsValid() {
		rt.Src = r.Src.AsSlice()
	}
	if r.Delete {
		rt.Protocol = unix.RTPROT_KERNEL
		if err := n.NL.RouteDel(rt); err != nil {
			return fmt.Errorf("ip route del %s dev %s table %d in %s: %w", r.Dst, r.Dev, rt.Table, n.Name, err)
		}
		return nil
	}
	if err := n.NL.RouteAdd(rt); err != nil {
		return fmt.Errorf("ip route add %s via %v dev %s table %d in %s: %w", r.Dst, r.Gw, r.Dev, rt.Table, n.Name, err)
	}
	return nil
}

func toRule(r plan.Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Priority, nr.Table = r.Priority, r.Table
	if r.Src.IsValid() {
		nr.Src = ipNet(r.Src.Addr().AsSlice(), r.Src.Bits())
	}
	if r.Dst.IsValid() {
		nr.Dst = ipNet(r.Dst.Addr().AsSlice(), r.Dst.Bits())
	}
	if r.Mask != 0 {
		nr.Mark = r.Mark
		m := r.Mask
		nr.Mask = &m
	}
	nr.IifName = r.IIF
	return nr
}

func describeRule(r plan.Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "prio %d", r.Priority)
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " from %s", r.Src)
	}
	if r.Dst.IsValid() {
		fmt.Fprintf(&b, " to %s", r.Dst)
	}
	if r.Mask != 0 {
		fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, r.Mask)
	}
	if r.IIF != "" {
		fmt.Fprintf(&b, " iif %s", r.IIF)
	}
	fmt.Fprintf(&b, " lookup %d", r.Table)
	return b.String()
}

func ipNet(ip []byte, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(ip), Mask: net.CIDRMask(bits, 8*len(ip))}
}

// sysctlsAndOffload runs inside the namespace: it writes the plan's sysctls
// and turns TX checksum offload off on veths, so captured packets carry real
// checksums and tcpdump -v shows no "incorrect" ones.
func sysctlsAndOffload(p *plan.Namespace, links map[string]netlink.Link) error {
	if err := sysctls(p, false); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for name, l := range links {
		if l.Type() != "veth" {
			continue
		}
		if err := txChecksumOff(fd, name); err != nil {
			return fmt.Errorf("tx checksum off on %s: %w", name, err)
		}
	}
	return nil
}

// sysctls writes the namespace's sysctls that go before links come up
// (late false) or after its iptables are restored (late true).
func sysctls(p *plan.Namespace, late bool) error {
	for _, s := range p.Sysctls {
		if s.AfterIptables != late {
			continue
		}
		if err := ns.WriteSysctl(s.Key, s.Value); err != nil {
			if s.Optional && errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
	}
	return nil
}

// txChecksumOff is `ethtool -K dev tx off` through the legacy ETHTOOL_STXCSUM
// ioctl, which the kernel maps onto the feature flags.
func txChecksumOff(fd int, dev string) error {
	const ethtoolSTXCSUM = 0x00000017
	val := struct{ cmd, data uint32 }{ethtoolSTXCSUM, 0}
	var ifr [40]byte
	copy(ifr[:unix.IFNAMSIZ-1], dev)
	*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val))
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0])))
	runtime.KeepAlive(&val)
	if errno != 0 {
		return errno
	}
	return nil
}
