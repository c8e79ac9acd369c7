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
