package run

import (
	"fmt"
	"net/netip"

	"github.com/labctl/labctl/lab/walk"
)

// Tuple is one direction of a connection as conntrack keys it.
type Tuple struct {
	Proto    string // tcp, udp
	Src, Dst netip.AddrPort
}

func (t Tuple) String() string {
	return fmt.Sprintf("%s src=%s dst=%s sport=%d dport=%d", t.Proto, t.Src.Addr(), t.Dst.Addr(), t.Src.Port(), t.Dst.Port())
}

// Entry is a conntrack entry: the tuple of the first packet, and the
// tuple the replies are expected with (after any NAT).
type Entry struct {
	Orig, Reply Tuple
}

// Translated: the replies are not simply the original reversed, so the
// namespace rewrote the connection (DNAT changes the reply's source, SNAT
// its destination).
func (e Entry) Translated() bool {
	return e.Reply.Src != e.Orig.Dst || e.Reply.Dst != e.Orig.Src
}

// String prints the entry as conntrack -L does.
func (e Entry) String() string {
	return e.Orig.String() + " " + e.Reply.String()[len(e.Reply.Proto)+1:]
}

// FlowTuples are the tuples of the walk's own packets as captured at one
// object's points (a node's ENIs and pod veths): the only tuples a
// conntrack entry of that object can have for the walk's flow. Evidence
// read this way is the flow's own; a chain counter also moves for health
// checks and other walks.
func FlowTuples(cl *walk.Classifier, pkts []walk.Packet, object string) map[Tuple]bool {
	out := map[Tuple]bool{}
	for i := range pkts {
		p := &pkts[i]
		if p.Point.Object != object || (p.Proto != "tcp" && p.Proto != "udp") || cl.Leg(p) == "" {
			continue
		}
		a, b := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
		out[Tuple{p.Proto, a, b}], out[Tuple{p.Proto, b, a}] = true, true
	}
	return out
}

// FlowEntries keeps the entries whose original tuple is one of the flow's.
func FlowEntries(entries []Entry, flow map[Tuple]bool) []Entry {
	var out []Entry
	for _, e := range entries {
		if flow[e.Orig] {
			out = append(out, e)
		}
	}
	return out
}
