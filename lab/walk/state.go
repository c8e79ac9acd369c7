package walk

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// NSState is what the kernel holds in one namespace, read back after up.
type NSState struct {
	Object  string
	Links   map[string]LinkState
	Addrs   []AddrState
	Routes  []RouteState
	Rules   []RuleState
	Neighs  []NeighState
	Sysctls map[string]string // slash keys, e.g. net/ipv4/conf/eth0/rp_filter
}

// LinkState is an interface.
type LinkState struct {
	Name string
	MAC  net.HardwareAddr
	MTU  int
	Up   bool
}

// AddrState is an address on an interface.
type AddrState struct {
	Dev    string
	Prefix netip.Prefix
}

// RouteState is a route as `ip route show table all` lists it.
type RouteState struct {
	Table int
	Dst   netip.Prefix
	Gw    netip.Addr
	Dev   string
	Link  bool // scope link
}

func (r RouteState) String() string {
	s := r.Dst.String()
	if r.Dst.Bits() == 0 {
		s = "default"
	} else if r.Dst.Bits() == 32 {
		s = r.Dst.Addr().String()
	}
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	s += " dev " + r.Dev
	if r.Link {
		s += " scope link"
	}
	return s
}

// RuleState is a policy routing rule.
type RuleState struct {
	Priority   int
	Src, Dst   netip.Prefix
	Mark, Mask uint32
	Table      int
}

// NeighState is a neighbour entry.
type NeighState struct {
	Dev       string
	IP        netip.Addr
	MAC       net.HardwareAddr
	Permanent bool
	Proxy     bool
}

// StateCheck is one A0 fact and whether the kernel showed it.
type StateCheck struct {
	Object string
	What   string
	Got    string
	OK     bool
}

// StateReport is the A0 check of a lab.
type StateReport struct{ Checks []StateCheck }

// Passed reports whether every fact held.
func (r *StateReport) Passed() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

// CheckState checks the pod and node plumbing every walk relies on (walk
// A0) against the kernel state read back from the namespaces, keyed by
// object name. Expected values come from the pods' roles, and the static
// ARP entry is compared with the host veth's MAC as the kernel reports it.
func CheckState(t *spec.Topology, snaps map[string]*NSState) *StateReport {
	r := &StateReport{}
	add := func(obj, what string, ok bool, got string) {
		r.Checks = append(r.Checks, StateCheck{Object: obj, What: what, OK: ok, Got: got})
	}
	for _, p := range t.Pods {
		pod, node := snaps[p.Name], snaps[p.Node]
		if pod == nil || node == nil {
			add(p.Name, "namespace present", false, "no snapshot")
			continue
		}
		veth := spec.HostVethName(p.Namespace, p.Name)
		addrs := pod.addrsOn("eth0")
		add(p.Name, fmt.Sprintf("eth0 has %s/32 only", p.IP), len(addrs) == 1 && addrs[0] == netip.PrefixFrom(p.IP, 32),
			fmt.Sprint(addrs))
		gw := netip.PrefixFrom(spec.PodGateway, 32)
		add(p.Name, "169.254.1.1 dev eth0 scope link", pod.hasRoute(254, RouteState{Dst: gw, Dev: "eth0", Link: true}), pod.routes(254))
		add(p.Name, "default via 169.254.1.1 dev eth0",
			pod.hasRoute(254, RouteState{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: spec.PodGateway, Dev: "eth0"}), pod.routes(254))
		hv, ok := node.Links[veth]
		nb := pod.neigh("eth0", spec.PodGateway)
		got := "none"
		if nb != nil {
			got = fmt.Sprintf("lladdr %s permanent=%v", nb.MAC, nb.Permanent)
		}
		add(p.Name, fmt.Sprintf("169.254.1.1 PERMANENT with %s's MAC (%s)", veth, hv.MAC),
			ok && nb != nil && nb.Permanent && bytes.Equal(nb.MAC, hv.MAC), got)
		add(p.Name, fmt.Sprintf("eth0 and %s MTU %d", veth, t.VPC.MTU),
			pod.Links["eth0"].MTU == t.VPC.MTU && hv.MTU == t.VPC.MTU, fmt.Sprintf("%d/%d", pod.Links["eth0"].MTU, hv.MTU))

		host := netip.PrefixFrom(p.IP, 32)
		add(p.Node, fmt.Sprintf("%s dev %s scope link (main)", p.IP, veth),
			node.hasRoute(254, RouteState{Dst: host, Dev: veth, Link: true}), "")
		add(p.Node, fmt.Sprintf("rule 512: to %s lookup main", p.IP),
			node.hasRule(RuleState{Priority: 512, Dst: host, Table: 254}), "")
		proxy := false
		for _, nb := range node.Neighs {
			if nb.Proxy && nb.IP == p.IP && nb.Dev == spec.ENIName(p.ENI) {
				proxy = true
			}
		}
		add(p.Node, fmt.Sprintf("%s answers ARP for %s (the VPC delivers the secondary IP to it)", spec.ENIName(p.ENI), p.IP), proxy, "")
		from := node.rulesFrom(host)
		if p.ENI == 0 {
			add(p.Node, fmt.Sprintf("no from-rule for %s (primary ENI: main decides)", p.IP), len(from) == 0, fmt.Sprint(from))
		} else {
			want := RuleState{Priority: 1536, Src: host, Table: spec.RouteTable(p.ENI)}
			add(p.Node, fmt.Sprintf("rule 1536: from %s lookup %d", p.IP, want.Table),
				len(from) == 1 && from[0] == want, fmt.Sprint(from))
		}
	}
	for _, n := range t.Nodes {
		s := snaps[n.Name]
		if s == nil {
			add(n.Name, "namespace present", false, "no snapshot")
			continue
		}
		add(n.Name, "rule 1024: fwmark 0x80/0x80 lookup main",
			s.hasRule(RuleState{Priority: 1024, Mark: 0x80, Mask: 0x80, Table: 254}), "")
		rp := s.Sysctls["net/ipv4/conf/eth0/rp_filter"]
		add(n.Name, "rp_filter loose (2) on eth0", rp == "2", rp)
		for _, e := range n.ENIs {
			if *e.Index == 0 {
				continue
			}
			dev := spec.ENIName(*e.Index)
			sub, _ := t.Subnet(e.Subnet)
			gw := spec.Gateway(sub.CIDR)
			table := spec.RouteTable(*e.Index)
			want := []string{
				RouteState{Dst: netip.PrefixFrom(gw, 32), Dev: dev, Link: true}.String(),
				RouteState{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: dev}.String(),
			}
			sort.Strings(want)
			got := s.routes(table)
			add(n.Name, fmt.Sprintf("table %d holds only: %s", table, strings.Join(want, "; ")),
				got == strings.Join(want, "; "), got)
			gone := true
			for _, rt := range s.Routes {
				if rt.Table == 254 && rt.Dst == sub.CIDR && rt.Dev == dev {
					gone = false
				}
			}
			add(n.Name, fmt.Sprintf("%s's subnet route %s is gone from main", dev, sub.CIDR), gone, "")
			want32765 := RuleState{Priority: 32765, Src: netip.PrefixFrom(e.IP, 32), Table: table}
			add(n.Name, fmt.Sprintf("rule 32765: from %s lookup %d", e.IP, table), s.hasRule(want32765), "")
		}
	}
	return r
}

func (s *NSState) addrsOn(dev string) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range s.Addrs {
		if a.Dev == dev {
			out = append(out, a.Prefix)
		}
	}
	return out
}

func (s *NSState) hasRoute(table int, want RouteState) bool {
	want.Table = table
	for _, r := range s.Routes {
		if r == want {
			return true
		}
	}
	return false
}

// routes lists a table's routes, sorted, as one string.
func (s *NSState) routes(table int) string {
	var out []string
	for _, r := range s.Routes {
		if r.Table == table {
			out = append(out, r.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func (s *NSState) hasRule(want RuleState) bool {
	for _, r := range s.Rules {
		if r == want {
			return true
		}
	}
	return false
}

func (s *NSState) rulesFrom(src netip.Prefix) []RuleState {
	var out []RuleState
	for _, r := range s.Rules {
		if r.Src == src {
			out = append(out, r)
		}
	}
	return out
}

func (s *NSState) neigh(dev string, ip netip.Addr) *NeighState {
	for i := range s.Neighs {
		if s.Neighs[i].Dev == dev && s.Neighs[i].IP == ip && !s.Neighs[i].Proxy {
			return &s.Neighs[i]
		}
	}
	return nil
}
