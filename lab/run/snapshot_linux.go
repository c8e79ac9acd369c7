//go:build linux

package run

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/walk"
)

// snapshotSysctls are the sysctls the A0 check reads.
var snapshotSysctls = []string{"net/ipv4/conf/eth0/rp_filter"}

// Snapshot reads a namespace's links, addresses, routes of every table,
// rules, neighbours and the checked sysctls from the kernel.
func Snapshot(n *ns.NS, object string) (*walk.NSState, error) {
	s := &walk.NSState{Object: object, Links: map[string]walk.LinkState{}, Sysctls: map[string]string{}}
	links, err := n.NL.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links in %s: %w", n.Name, err)
	}
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		s.Links[a.Name] = walk.LinkState{Name: a.Name, MAC: a.HardwareAddr, MTU: a.MTU, Up: a.Flags&net.FlagUp != 0}
		addrs, err := n.NL.AddrList(l, unix.AF_INET)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s in %s: %w", a.Name, n.Name, err)
		}
		for _, ad := range addrs {
			s.Addrs = append(s.Addrs, walk.AddrState{Dev: a.Name, Prefix: prefix(ad.IPNet)})
		}
	}
	routes, err := n.NL.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes in %s: %w", n.Name, err)
	}
	for _, r := range routes {
		if r.Type != unix.RTN_UNICAST || r.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		rs := walk.RouteState{Table: r.Table, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: names[r.LinkIndex],
			Link: r.Scope == netlink.SCOPE_LINK}
		if r.Dst != nil {
			rs.Dst = prefix(r.Dst)
		}
		if r.Gw != nil {
			rs.Gw, _ = netip.AddrFromSlice(r.Gw.To4())
		}
		s.Routes = append(s.Routes, rs)
	}
	rules, err := n.NL.RuleList(unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("listing rules in %s: %w", n.Name, err)
	}
	for _, r := range rules {
		rs := walk.RuleState{Priority: r.Priority, Src: prefix(r.Src), Dst: prefix(r.Dst), Table: r.Table, Mark: r.Mark}
		if r.Mask != nil {
			rs.Mask = *r.Mask
		}
		s.Rules = append(s.Rules, rs)
	}
	neighs, err := n.NL.NeighList(0, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("listing neighbours in %s: %w", n.Name, err)
	}
	proxies, err := n.NL.NeighProxyList(0, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("listing proxy neighbours in %s: %w", n.Name, err)
	}
	for _, p := range proxies {
		ip, _ := netip.AddrFromSlice(p.IP.To4())
		s.Neighs = append(s.Neighs, walk.NeighState{Dev: names[p.LinkIndex], IP: ip, Proxy: true})
	}
	for _, nb := range neighs {
		ip, _ := netip.AddrFromSlice(nb.IP.To4())
		s.Neighs = append(s.Neighs, walk.NeighState{Dev: names[nb.LinkIndex], IP: ip, MAC: nb.HardwareAddr,
			Permanent: nb.State&netlink.NUD_PERMANENT != 0})
	}
	err = n.Do(func() error {
		for _, k := range snapshotSysctls {
			if v, err := ns.ReadSysctl(k); err == nil {
				s.Sysctls[k] = v
			}
		}
		return nil
	})
	return s, err
}

func prefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, _ := netip.AddrFromSlice(n.IP.To4())
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a, bits)
}

// State runs the A0 check: it reads every node and pod back from the kernel.
func (s *Session) State() (*walk.StateReport, error) {
	snaps := map[string]*walk.NSState{}
	var objs []string
	for _, n := range s.Topo.Nodes {
		objs = append(objs, n.Name)
	}
	for _, p := range s.Topo.Pods {
		objs = append(objs, p.Name)
	}
	for _, o := range objs {
		n, err := s.NS(o)
		if err != nil {
			return nil, err
		}
		snap, err := Snapshot(n, o)
		if err != nil {
			return nil, err
		}
		snaps[o] = snap
	}
	return walk.CheckState(s.Topo, snaps), nil
}
