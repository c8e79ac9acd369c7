package walk

import (
	"fmt"
	"net/netip"

	"github.com/google/gopacket/layers"
)

// Stop is where a failed walk's packet stopped: the last hop the capture
// showed, and the first that did not happen (or differed).
type Stop struct {
	// Last is the last hop seen before Next, nil if the first hop failed.
	Last *HopResult
	// Next is the first hop that failed.
	Next *HopResult
	// Decider is the namespace whose decision the packet waited on: the
	// one it was last seen entering (or leaving, when it never arrived).
	Decider string
}

// StoppedAt finds where a failed walk's flow stopped; nil for a walk
// whose every hop matched.
func StoppedAt(r *Report) *Stop {
	next := r.FirstFailure()
	if next == nil {
		return nil
	}
	st := &Stop{Next: next, Decider: next.Point.Object}
	for i := range r.Hops {
		h := &r.Hops[i]
		if h == next {
			break
		}
		if h.Seen != nil && h.Verdict == OK {
			st.Last = h
		}
	}
	if st.Last != nil && next.Dir == In && st.Last.Point.Object != next.Point.Object {
		// It left Last's namespace and never arrived: what lies between
		// (a switch, a wire) or the next namespace dropped it on entry.
		st.Decider = next.Point.Object
	} else if st.Last != nil {
		st.Decider = st.Last.Point.Object
	}
	return st
}

// ARPExchange counts, at one capture point, the ARP requests for target
// and the replies that answered them: requests without replies are a next
// hop that does not exist (the VPC does not deliver the address).
func ARPExchange(pkts []Packet, pt Point, target netip.Addr) (requests, replies int, frames []int) {
	for _, p := range pkts {
		if p.Point != pt || p.Proto != "arp" {
			continue
		}
		switch {
		case p.ARPOp == layers.ARPRequest && p.Dst == target:
			requests++
			frames = append(frames, p.Frame)
		case p.ARPOp == layers.ARPReply && p.Src == target:
			replies++
		}
	}
	return requests, replies, frames
}

// ResetsOf lists the TCP resets among the flow's packets, as "where: summary".
func ResetsOf(c *Classifier, pkts []Packet) []string {
	var out []string
	flow := FlowPackets(c, pkts)
	for i := range pkts {
		p := &pkts[i]
		if p.Proto == "tcp" && p.TCP.RST && flow(p) {
			out = append(out, fmt.Sprintf("%s %s (frame %d)", p.Point, p.Summary(), p.Frame))
		}
	}
	return out
}

// Aside is a packet of a walk run that is not one of its hops but tells
// its story: a DNS exchange the client made first, an ARP request nobody
// answered.
type Aside struct {
	Point Point
	Frame int
	What  string
	// Bad: the packet shows a failure (an unanswered ARP request).
	Bad bool
}

// Asides are the DNS packets captured at the client's own points (for a
// walk whose flow is not DNS itself) and every ARP request that got no
// reply at the point where it was seen.
func Asides(c *Classifier, pkts []Packet, client string) []Aside {
	var out []Aside
	answered := map[Point]map[netip.Addr]bool{}
	for _, p := range pkts {
		if p.Proto == "arp" && p.ARPOp == layers.ARPReply {
			if answered[p.Point] == nil {
				answered[p.Point] = map[netip.Addr]bool{}
			}
			answered[p.Point][p.Src] = true
		}
	}
	for i := range pkts {
		p := &pkts[i]
		switch {
		case p.Proto == "udp" && (p.SrcPort == 53 || p.DstPort == 53) && p.Point.Object == client && !c.DNS:
			what := "DNS query"
			if p.SrcPort == 53 {
				what = "DNS answer"
			}
			out = append(out, Aside{Point: p.Point, Frame: p.Frame, What: fmt.Sprintf("%s %s > %s", what, p.Src, p.Dst)})
		case p.Proto == "arp" && p.ARPOp == layers.ARPRequest && !answered[p.Point][p.Dst]:
			out = append(out, Aside{Point: p.Point, Frame: p.Frame, What: fmt.Sprintf("ARP who-has %s tell %s: no answer", p.Dst, p.Src), Bad: true})
		}
	}
	return out
}
