package spec

import (
	"fmt"
	"net/netip"
	"strings"
)

// allocator hands out pod addresses as ipamd would: the lowest free,
// non-reserved address of the ENI's subnet, or with prefix delegation the
// lowest free address of the ENI's delegated /28s (getUnusedIP in
// amazon-vpc-cni-k8s pkg/ipamd/datastore/data_store.go). Addresses are only
// ever taken, never given back, so a cursor per subnet and per ENI makes
// placing n pods O(n + addresses scanned) instead of O(n^2).
type allocator struct {
	t    *Topology
	used map[netip.Addr]bool
	// delegated holds every /28 delegated to some ENI: EC2 gives none of
	// its addresses to another ENI as a secondary IP.
	delegated  map[netip.Prefix]bool
	subnetNext map[string]netip.Addr
	prefixNext map[*ENI]netip.Addr
	// lbs are the load balancer nodes' addresses by subnet (LBAddrs): no
	// pod may take one, or a replacement could move a load balancer.
	lbs map[string]map[netip.Addr]bool
}

func newAllocator(t *Topology, used map[netip.Addr]bool) *allocator {
	a := &allocator{t: t, used: used, delegated: map[netip.Prefix]bool{},
		subnetNext: map[string]netip.Addr{}, prefixNext: map[*ENI]netip.Addr{}, lbs: map[string]map[netip.Addr]bool{}}
	for i := range t.Nodes {
		for _, e := range t.Nodes[i].ENIs {
			for _, p := range e.Prefixes {
				if p.IsValid() && p.Addr().Is4() {
					a.delegated[p.Masked()] = true
				}
			}
		}
	}
	return a
}

// inDelegated reports whether addr is inside some ENI's delegated /28.
func (a *allocator) inDelegated(addr netip.Addr) bool {
	if len(a.delegated) == 0 || !addr.Is4() {
		return false
	}
	p, _ := addr.Prefix(28)
	return a.delegated[p]
}

// take returns and marks the next free address for a pod on the ENI, or
// the zero Addr when there is none. The ENI must belong to the topology.
func (a *allocator) take(e *ENI) netip.Addr {
	if len(e.Prefixes) > 0 && a.t.VPC.PrefixDelegation {
		return a.takePrefix(e)
	}
	s, ok := a.t.Subnet(e.Subnet)
	if !ok || !s.CIDR.IsValid() || !s.CIDR.Addr().Is4() {
		return netip.Addr{}
	}
	start, ok := a.subnetNext[s.Name]
	if !ok {
		start = s.CIDR.Masked().Addr()
	}
	lbs, ok := a.lbs[s.Name]
	if !ok {
		lbs = map[netip.Addr]bool{}
		for _, l := range a.t.LBAddrs(s) {
			lbs[l] = true
		}
		a.lbs[s.Name] = lbs
	}
	for addr := start; s.CIDR.Contains(addr); addr = addr.Next() {
		if !a.used[addr] && !lbs[addr] && !Reserved(s.CIDR, addr) && !a.inDelegated(addr) {
			a.used[addr] = true
			a.subnetNext[s.Name] = addr.Next()
			return addr
		}
	}
	a.subnetNext[s.Name] = lastAddr(s.CIDR)
	return netip.Addr{}
}

// takePrefix hands out the lowest free address of the ENI's prefixes in
// list order, offset 0 included, as ipamd does.
func (a *allocator) takePrefix(e *ENI) netip.Addr {
	start, started := a.prefixNext[e]
	for _, p := range e.Prefixes {
		if !p.IsValid() || !p.Addr().Is4() {
			continue
		}
		p = p.Masked()
		addr := p.Addr()
		if started {
			if !p.Contains(start) {
				continue
			}
			addr, started = start, false
		}
		for ; p.Contains(addr); addr = addr.Next() {
			if !a.used[addr] {
				a.used[addr] = true
				a.prefixNext[e] = addr
				return addr
			}
		}
	}
	return netip.Addr{}
}

// pool names where an ENI's pod addresses come from, for messages.
func (a *allocator) pool(e *ENI) string {
	if len(e.Prefixes) > 0 && a.t.VPC.PrefixDelegation {
		s := make([]string, len(e.Prefixes))
		for i, p := range e.Prefixes {
			s[i] = p.String()
		}
		return "delegated prefixes " + strings.Join(s, ", ") + " are full"
	}
	s, _ := a.t.Subnet(e.Subnet)
	return fmt.Sprintf("subnet %s %s is full", s.Name, s.CIDR)
}
