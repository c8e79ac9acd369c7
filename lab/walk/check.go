package walk

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/gopacket/layers"
)

// Verdicts of a hop.
const (
	OK         = "ok"
	Missing    = "MISSING"
	Mismatch   = "MISMATCH"
	Unexpected = "UNEXPECTED"
)

// HopResult is a hop with what the capture showed there.
type HopResult struct {
	Hop
	Verdict string
	Seen    *Packet  // the packet that matched, or the flow's packet that differed
	Diffs   []string // what differed, e.g. "dst MAC 0a:.. instead of 0e:.."
}

// Report is the outcome of one walk run.
type Report struct {
	Expectation *Expectation
	Hops        []HopResult
	// Unexpected lists flow packets seen where no hop allows them.
	Unexpected []HopResult
	// Notes are run facts worth showing (the endpoint picked, the app's answer).
	Notes []string
	// Failed is set when the exchange itself went wrong although every hop
	// matched (no answer where one was due, a wrong DNS answer).
	Failed bool
	// CrossAZ is every byte of the run (the whole exchange, not only the
	// checked packets) that crossed an AZ boundary.
	CrossAZ CrossAZ
}

// Passed reports whether every hop matched, nothing showed up elsewhere,
// and the exchange ended as the walk expects.
func (r *Report) Passed() bool { return r.FirstFailure() == nil && !r.Failed }

// FirstFailure is the first hop that differed, in path order, or nil.
func (r *Report) FirstFailure() *HopResult {
	for i := range r.Hops {
		if r.Hops[i].Verdict != OK {
			return &r.Hops[i]
		}
	}
	if len(r.Unexpected) > 0 {
		return &r.Unexpected[0]
	}
	return nil
}

// Classifier tells which packets belong to the walk's flow and which leg
// they are. It identifies packets by what NAT never rewrites: the payload
// token (ICMP, UDP) or the TCP initial sequence number.
type Classifier struct {
	Proto string
	Token []byte // ICMP and UDP payload marker
	ISN   uint32 // TCP: the client's SYN sequence number
	// HaveISN is false until the client's SYN was found.
	HaveISN bool
	// DNSID identifies a dns walk's query and answer (DNS is set).
	DNS   bool
	DNSID uint16
	// HTTP identifies segments by the token in an HTTP request and in the
	// app's answer (which echoes the request's headers), and the answer to
	// the client by its port: a proxy (the ALB) opens a connection of its
	// own, so sequence numbers cannot follow the request across it.
	HTTP       bool
	ClientPort uint16
	// Backend, with HTTP, is the proxy's own connection to the target, as
	// the proxy reported it: its packets belong to the flow even when they
	// carry no token, such as a SYN the target refused with a RST (a 502)
	// or never answered (a 504).
	Backend *Conn
}

// Conn is one TCP connection: the side that opened it, and the other.
type Conn struct{ Src, Dst netip.AddrPort }

// Leg returns the leg of a packet, or "" when it is not part of the flow.
func (c *Classifier) Leg(p *Packet) Leg {
	if p.Proto != c.Proto {
		return ""
	}
	switch c.Proto {
	case "icmp":
		if !bytes.Contains(p.Payload, c.Token) {
			return ""
		}
		switch p.ICMPType {
		case layers.ICMPv4TypeEchoRequest:
			return Request
		case layers.ICMPv4TypeEchoReply:
			return Reply
		}
	case "udp":
		if c.DNS {
			if len(p.Payload) < 12 || uint16(p.Payload[0])<<8|uint16(p.Payload[1]) != c.DNSID {
				return ""
			}
			if p.Payload[2]&0x80 == 0 {
				return Request
			}
			return Reply
		}
		switch {
		case bytes.HasPrefix(p.Payload, c.Token):
			return Request
		case bytes.Contains(p.Payload, c.Token):
			return Reply
		}
	case "tcp":
		if c.HTTP {
			return c.httpLeg(p)
		}
		if !c.HaveISN {
			return ""
		}
		switch {
		case p.TCP.SYN && !p.TCP.ACK && p.TCP.Seq == c.ISN:
			return Request
		case p.TCP.SYN && p.TCP.ACK && p.TCP.Ack == c.ISN+1:
			return Reply
		}
	}
	return ""
}

func (c *Classifier) httpLeg(p *Packet) Leg {
	if b := c.Backend; b != nil {
		switch {
		case p.Src == b.Src.Addr() && p.SrcPort == b.Src.Port() && p.Dst == b.Dst.Addr() && p.DstPort == b.Dst.Port():
			return Request
		case p.Src == b.Dst.Addr() && p.SrcPort == b.Dst.Port() && p.Dst == b.Src.Addr() && p.DstPort == b.Src.Port():
			return Reply
		}
	}
	switch {
	case len(p.Payload) == 0:
		return ""
	case bytes.Contains(p.Payload, c.Token) && (bytes.HasPrefix(p.Payload, []byte("GET ")) ||
		bytes.HasPrefix(p.Payload, []byte("POST "))):
		return Request
	case bytes.Contains(p.Payload, c.Token):
		return Reply
	case bytes.HasPrefix(p.Payload, []byte("HTTP/")) && p.DstPort == c.ClientPort:
		return Reply
	}
	return ""
}

// Endpoint finds which candidate address the flow's request reached after
// NAT: the first request packet addressed to one of them.
func (c *Classifier) Endpoint(pkts []Packet, candidates map[netip.Addr]string) string {
	for i := range pkts {
		if c.Leg(&pkts[i]) == Request {
			if name, ok := candidates[pkts[i].Dst]; ok {
				return name
			}
		}
	}
	return ""
}

// FindISN finds the client's SYN at its own eth0, before any NAT, by the
// source port the client bound.
func (c *Classifier) FindISN(e *Expectation, pkts []Packet) bool {
	for _, p := range pkts {
		if p.Point == (Point{e.From.Object, "eth0"}) && p.Dir == Out && p.Proto == "tcp" &&
			p.TCP.SYN && !p.TCP.ACK && p.Src == e.From.IP && p.SrcPort == e.ClientPort {
			c.ISN, c.HaveISN = p.TCP.Seq, true
			return true
		}
	}
	return false
}

type key struct {
	pt  Point
	dir Dir
	leg Leg
}

// Check compares captured packets with the expectation.
func Check(e *Expectation, c *Classifier, pkts []Packet) *Report {
	r := &Report{Expectation: e}
	seen := map[key][]*Packet{}
	for i := range pkts {
		p := &pkts[i]
		if leg := c.Leg(p); leg != "" {
			k := key{p.Point, p.Dir, leg}
			seen[k] = append(seen[k], p)
		}
	}
	// The VPC router never sends ICMP redirects, and nothing in a lab should:
	// one anywhere in the capture is a finding.
	for i := range pkts {
		if p := &pkts[i]; p.Proto == "icmp" && p.ICMPType == layers.ICMPv4TypeRedirect && p.Dir == Out {
			r.Unexpected = append(r.Unexpected, HopResult{Hop: Hop{Point: p.Point, Dir: p.Dir,
				Why: "an ICMP redirect: the VPC router never sends one"}, Verdict: Unexpected, Seen: p})
		}
	}
	allowed := map[key]bool{}
	for _, h := range e.Hops {
		k := key{h.Point, h.Dir, h.Leg}
		allowed[k] = true
		r.Hops = append(r.Hops, judge(h, seen[k]))
	}
	for _, pt := range e.Points {
		for _, dir := range []Dir{In, Out} {
			for _, leg := range []Leg{Request, Reply} {
				k := key{pt, dir, leg}
				if allowed[k] || len(seen[k]) == 0 {
					continue
				}
				p := seen[k][0]
				r.Unexpected = append(r.Unexpected, HopResult{
					Hop:     Hop{Leg: leg, Point: pt, Dir: dir, Why: "no hop of this walk passes here"},
					Verdict: Unexpected, Seen: p,
				})
			}
		}
	}
	return r
}

// judge picks, among the flow's packets at the hop, the one that matches;
// failing that it reports the first one and how it differs.
func judge(h Hop, cands []*Packet) HopResult {
	res := HopResult{Hop: h, Verdict: Missing}
	for _, p := range cands {
		d := diff(h, p)
		if len(d) == 0 {
			res.Verdict, res.Seen, res.Diffs = OK, p, nil
			return res
		}
		if res.Seen == nil {
			res.Verdict, res.Seen, res.Diffs = Mismatch, p, d
		}
	}
	return res
}

func diff(h Hop, p *Packet) []string {
	var d []string
	mac := func(what string, want, got net.HardwareAddr) {
		if want != nil && !bytes.Equal(want, got) {
			d = append(d, fmt.Sprintf("%s %s instead of %s", what, got, want))
		}
	}
	mac("src MAC", h.SrcMAC, p.SrcMAC)
	mac("dst MAC", h.DstMAC, p.DstMAC)
	if h.Src.IsValid() && h.Src != p.Src {
		d = append(d, fmt.Sprintf("src IP %s instead of %s", p.Src, h.Src))
	}
	if h.Dst.IsValid() && h.Dst != p.Dst {
		d = append(d, fmt.Sprintf("dst IP %s instead of %s", p.Dst, h.Dst))
	}
	if h.SrcPort != 0 && h.SrcPort != p.SrcPort {
		d = append(d, fmt.Sprintf("src port %d instead of %d", p.SrcPort, h.SrcPort))
	}
	if h.DstPort != 0 && h.DstPort != p.DstPort {
		d = append(d, fmt.Sprintf("dst port %d instead of %d", p.DstPort, h.DstPort))
	}
	// A walk's flow never ends in a reset: one means the connection was
	// refused (nothing listens, or a REJECT rule) or torn down.
	if p.Proto == "tcp" && p.TCP.RST {
		d = append(d, fmt.Sprintf("a TCP RST from %s: the connection was refused or reset", p.Src))
	}
	return d
}

// Describe is the failure in one sentence: the hop, and what it saw instead.
func (h HopResult) Describe() string {
	where := fmt.Sprintf("%s %s at %s", h.Leg, h.Dir, h.Point)
	switch h.Verdict {
	case Missing:
		return fmt.Sprintf("%s: nothing of the flow seen (expected %s)", where, h.expected())
	case Mismatch:
		return fmt.Sprintf("%s: %s; saw %s", where, strings.Join(h.Diffs, ", "), h.Seen.Summary())
	case Unexpected:
		return fmt.Sprintf("%s: the flow showed up where no hop allows it: %s", where, h.Seen.Summary())
	}
	return where + ": " + h.Seen.Summary()
}

func (h HopResult) expected() string {
	return fmt.Sprintf("%s > %s, %s > %s", h.SrcMAC, h.DstMAC, h.Src, h.Dst)
}
