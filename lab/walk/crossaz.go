package walk

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

// CrossAZPricePerGB is the published price of data moved between AZs of a
// Region, charged in each direction (out of one AZ, into the other).
const CrossAZPricePerGB = 0.01

// CrossAZ is what a walk run moved between AZs.
type CrossAZ struct {
	Packets, Bytes int
	// Crossings lists each distinct boundary crossed, "us-east-1a -> us-east-1b".
	Crossings map[string]int
}

// Cost is the crossing's price: each byte is billed leaving one AZ and
// entering the other.
func (c CrossAZ) Cost() float64 { return 2 * float64(c.Bytes) / 1e9 * CrossAZPricePerGB }

// PortAZs maps each VPC router port to the AZ of the ENI behind it.
func PortAZs(t *spec.Topology, lbs *lb.Model) map[string]string {
	out := map[string]string{}
	for _, n := range t.Nodes {
		for _, e := range n.ENIs {
			s, _ := t.Subnet(e.Subnet)
			out[spec.RouterPortName(n.Name, *e.Index)] = s.AZ
		}
	}
	for _, h := range t.Hosts {
		s, _ := t.Subnet(h.Subnet)
		out[spec.RouterPortName(h.Name, 0)] = s.AZ
	}
	if lbs != nil {
		for _, l := range lbs.LBs {
			for _, n := range l.Nodes {
				out[spec.RouterPortName(l.Name, n.Index)] = n.AZ
			}
		}
	}
	return out
}

type ipKey struct {
	src, dst netip.Addr
	id       uint16
	proto    string
	length   int
}

// CountCrossAZ finds every IPv4 packet of the flow that entered the VPC
// fabric at a router port in one AZ and left it at a port in another,
// matching the two sightings by what routing does not change (addresses, IP
// ID, length). The flow is every packet on a connection one of its
// classified packets is on (see FlowPackets), so the handshake's ACK, the
// data and the FINs count, and load balancer health checks do not.
func CountCrossAZ(azs map[string]string, pkts []Packet, flow func(*Packet) bool) CrossAZ {
	c := CrossAZ{Crossings: map[string]int{}}
	entered := map[ipKey]string{}
	for i := range pkts {
		p := &pkts[i]
		if p.Point.Object != spec.RouterName || !p.Src.IsValid() || !flow(p) {
			continue
		}
		az, ok := azs[p.Point.Iface]
		if !ok {
			continue
		}
		k := ipKey{p.Src, p.Dst, p.IPID, p.Proto, p.IPLen}
		if p.Dir == In {
			entered[k] = az
			continue
		}
		if from, ok := entered[k]; ok && from != az {
			c.Packets++
			c.Bytes += p.IPLen
			c.Crossings[fmt.Sprintf("%s -> %s", from, az)]++
		}
	}
	return c
}

// conn is one direction of a connection as a packet shows it.
type conn struct {
	proto    string
	src, dst netip.AddrPort
}

// FlowPackets returns a test for the packets of the walk's flow: those on a
// connection (either direction, as seen at any point, NAT included) that a
// packet the classifier assigned to a leg is on.
func FlowPackets(c *Classifier, pkts []Packet) func(*Packet) bool {
	conns := map[conn]bool{}
	for i := range pkts {
		p := &pkts[i]
		if c.Leg(p) != "" {
			a, b := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
			conns[conn{p.Proto, a, b}], conns[conn{p.Proto, b, a}] = true, true
		}
	}
	return func(p *Packet) bool {
		return conns[conn{p.Proto, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}]
	}
}

// SpreadRequestRate is the request rate a spread walk's monthly cost is
// stated at: 100 requests a second, every second of a 30-day month.
const SpreadRequestRate = 100

// MonthlyCost is what crossing costs a month at rate requests a second when
// each request moves bytesPerRequest across AZs (billed out and in).
func MonthlyCost(bytesPerRequest, rate float64) float64 {
	return 2 * bytesPerRequest * rate * 30 * 24 * 3600 / 1e9 * CrossAZPricePerGB
}

// SpreadCrossAZ counts what a spread walk's requests moved between AZs,
// from a capture at the VPC router's ports: a packet belongs to the walk
// when its connection (as seen at that sighting) carried a request with a
// walk token; crossed counts the requests (tokens) with at least one packet
// that carries the token across a boundary. Connections are matched per
// sighting, so every hop of a request (client to load balancer, load
// balancer to node, node to pod) counts on its own.
func SpreadCrossAZ(azs map[string]string, pkts []Packet) (c CrossAZ, crossed int) {
	conns := map[conn]bool{}
	for i := range pkts {
		p := &pkts[i]
		if walkToken(p.Payload) != "" {
			a, b := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
			conns[conn{p.Proto, a, b}], conns[conn{p.Proto, b, a}] = true, true
		}
	}
	byToken := map[string]bool{}
	c = CountCrossAZ(azs, pkts, func(p *Packet) bool {
		return conns[conn{p.Proto, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}]
	})
	// CountCrossAZ counts packets; which requests crossed needs the token
	// of each crossing packet, so walk the sightings once more.
	entered := map[ipKey]string{}
	for i := range pkts {
		p := &pkts[i]
		az, ok := azs[p.Point.Iface]
		if p.Point.Object != spec.RouterName || !ok || !p.Src.IsValid() {
			continue
		}
		tok := walkToken(p.Payload)
		if tok == "" {
			continue
		}
		k := ipKey{p.Src, p.Dst, p.IPID, p.Proto, p.IPLen}
		if p.Dir == In {
			entered[k] = az
		} else if from, ok := entered[k]; ok && from != az {
			byToken[tok] = true
		}
	}
	return c, len(byToken)
}

// walkToken finds a walk token ("labctl-walk-" and 16 hex digits) in a
// payload, "" if there is none.
func walkToken(b []byte) string {
	const prefix = "labctl-walk-"
	i := bytes.Index(b, []byte(prefix))
	if i < 0 || len(b) < i+len(prefix)+16 {
		return ""
	}
	return string(b[i : i+len(prefix)+16])
}
