//go:build linux

package run

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/labctl/labctl/lab/walk"
)

// whereItStopped reads from the kernel why a failed walk's packet went no
// further: the last hop the capture showed and the first that did not
// happen, then in the namespace that had to act: its route for the packet
// (unreachable, or the next hop and that neighbour's state), ARP requests
// for the next hop that nobody answered, reverse-path-filter drops, DROP
// and REJECT rules that counted packets, and resets of the flow.
func (s *Session) whereItStopped(r *walk.Report, cl *walk.Classifier, pkts []walk.Packet) []string {
	st := walk.StoppedAt(r)
	if st == nil {
		return nil
	}
	const tag = "where it stopped: "
	what := "never happened"
	if st.Next.Seen != nil {
		what = "differed (" + strings.Join(st.Next.Diffs, "; ") + ")"
	}
	var out []string
	if st.Last == nil {
		out = append(out, fmt.Sprintf("%sthe first hop, %s %s, %s", tag, st.Next.Point, st.Next.Dir, what))
	} else {
		out = append(out, fmt.Sprintf("%slast seen at %s %s (%s); the next hop, %s %s, %s", tag, st.Last.Point, st.Last.Dir,
			st.Last.Seen.Summary(), st.Next.Point, st.Next.Dir, what))
	}
	dec := st.Decider
	h, err := s.NS(dec)
	if err != nil {
		return append(out, tag+dec+": "+err.Error())
	}
	// The decider's route for the packet as it last was, and its next hop.
	if st.Last != nil && st.Last.Point.Object == dec {
		p := st.Last.Seen
		iif := ""
		if st.Last.Dir == walk.In {
			iif = st.Last.Point.Iface
		}
		for _, l := range s.routeLine(h, dec, p.Src, p.Dst, iif, 0, "") {
			out = append(out, tag+l)
		}
		next := p.Dst
		opts := &netlink.RouteGetOptions{}
		if iif != "" {
			opts.Iif, opts.SrcAddr = iif, p.Src.AsSlice()
		}
		if rts, err := h.NL.RouteGetWithOptions(p.Dst.AsSlice(), opts); err == nil && len(rts) > 0 && rts[0].Gw != nil {
			next, _ = netip.AddrFromSlice(rts[0].Gw.To4())
		}
		for _, pt := range r.Expectation.Points {
			if pt.Object != dec {
				continue
			}
			if n, m, frames := walk.ARPExchange(pkts, pt, next); n > 0 && m == 0 {
				out = append(out, fmt.Sprintf("%s%s: %d ARP requests for %s on %s, none answered (frames %v): nothing on that link has the address",
					tag, dec, n, next, pt.Iface, frames))
			}
		}
	}
	var netstat []byte
	_ = h.Do(func() error {
		netstat, err = os.ReadFile("/proc/thread-self/net/netstat")
		return err
	})
	if v, ok := NetstatCounter(string(netstat), "TcpExt", "IPReversePathFilter"); ok && v > 0 {
		out = append(out, fmt.Sprintf("%s%s: the kernel dropped %d packets on the reverse-path filter (rp_filter) since the lab started", tag, dec, v))
	}
	if v, ok := NetstatCounter(string(netstat), "IpExt", "InNoRoutes"); ok && v > 0 {
		out = append(out, fmt.Sprintf("%s%s: %d packets had no route (IpExt InNoRoutes)", tag, dec, v))
	}
	if save, err := s.nf.Save(h, true); err == nil {
		for _, d := range CountedDrops(save) {
			out = append(out, fmt.Sprintf("%s%s: a rule that drops counted packets: %s", tag, dec, d))
		}
	}
	for _, rst := range walk.ResetsOf(cl, pkts) {
		out = append(out, tag+"a TCP reset of the flow: "+rst)
	}
	out = append(out, s.nftStopped(dec, r)...)
	return out
}
