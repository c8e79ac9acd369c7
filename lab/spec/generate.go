package spec

import (
	"fmt"
	"net/netip"
)

// Generate builds a valid topology of nodes x podsPerNode spread over azs
// AZs (one /19 subnet each in 10.0.0.0/16), for benchmarks and scale tests.
// Nodes are m5.4xlarge (8 ENIs of 30 IPv4 addresses); pods fill eth0, then
// eth1, and so on, 29 to an ENI, so large labs exercise secondary ENIs.
func Generate(name string, nodes, podsPerNode, azs int) (*Topology, error) {
	if nodes < 1 || podsPerNode < 0 || azs < 1 || azs > 8 {
		return nil, fmt.Errorf("generate: need nodes >= 1, pods >= 0 and 1..8 AZs")
	}
	const perENI = 29
	enis := max(1, (podsPerNode+perENI-1)/perENI)
	if enis > 8 {
		return nil, fmt.Errorf("generate: %d pods per node need %d ENIs; m5.4xlarge has 8", podsPerNode, enis)
	}
	t := &Topology{Name: name, Description: fmt.Sprintf("generated: %d nodes x %d pods", nodes, podsPerNode),
		VPC: VPC{CIDR: netip.MustParsePrefix("10.0.0.0/16")}, File: "(generated)"}
	next := make([]netip.Addr, azs)
	for i := 0; i < azs; i++ {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(32 * i), 0}), 19)
		t.AZs = append(t.AZs, AZ{Name: fmt.Sprintf("az%d", i+1), Subnets: []Subnet{{Name: fmt.Sprintf("s%d", i+1), CIDR: cidr}}})
		next[i] = cidr.Addr().Next().Next().Next().Next() // past the AWS-reserved four
	}
	alloc := func(az int) netip.Addr {
		a := next[az]
		next[az] = a.Next()
		return a
	}
	for n := 0; n < nodes; n++ {
		az := n % azs
		node := Node{Name: fmt.Sprintf("n%d", n), InstanceType: "m5.4xlarge"}
		for e := 0; e < enis; e++ {
			idx := e
			node.ENIs = append(node.ENIs, ENI{Index: &idx, Subnet: t.AZs[az].Subnets[0].Name, IP: alloc(az)})
		}
		t.Nodes = append(t.Nodes, node)
		for p := 0; p < podsPerNode; p++ {
			t.Pods = append(t.Pods, Pod{Name: fmt.Sprintf("p%d-%d", n, p), Node: node.Name, ENI: p / perENI, IP: alloc(az),
				Labels: map[string]string{"app": "bench"}})
		}
	}
	if nodes > 1 && podsPerNode > 0 {
		last := nodes - 1
		t.Walks = []Walk{
			{Name: "same-node", From: "p0-0", To: fmt.Sprintf("p0-%d", podsPerNode-1), Protocol: "tcp"},
			{Name: "cross-node", From: "p0-0", To: fmt.Sprintf("p%d-%d", last, podsPerNode-1), Protocol: "tcp"},
		}
	}
	t.applyDefaults()
	if errs := t.Validate(); errs != nil {
		return nil, errs
	}
	return t, nil
}
