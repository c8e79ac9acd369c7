package walk

import (
	"math"
	"net/netip"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func TestSpreadCrossAZCountsEachRequestThatCrossedAndItsConnectionsBytes(t *testing.T) {
	azs := map[string]string{"a.eth0": "us-east-1a", "a2.eth0": "us-east-1a", "b.eth0": "us-east-1b"}
	client := netip.MustParseAddr("10.0.1.10")
	near, far := netip.MustParseAddrPort("10.0.1.20:80"), netip.MustParseAddrPort("10.0.2.20:80")
	probe := netip.MustParseAddrPort("10.0.1.10:51000")
	id := uint16(0)
	at := func(iface string, dir Dir, src, dst netip.AddrPort, payload string) Packet {
		return Packet{Point: Point{spec.RouterName, iface}, Dir: dir, Proto: "tcp", Src: src.Addr(), SrcPort: src.Port(),
			Dst: dst.Addr(), DstPort: dst.Port(), IPID: id, IPLen: 40 + len(payload), Payload: []byte(payload)}
	}
	// via routes one packet through the router: in at one port, out at another.
	via := func(in, out string, src, dst netip.AddrPort, payload string) []Packet {
		id++
		return []Packet{at(in, In, src, dst, payload), at(out, Out, src, dst, payload)}
	}
	var pkts []Packet
	req := func(port uint16, dst netip.AddrPort, out, token string) {
		src := netip.AddrPortFrom(client, port)
		pkts = append(pkts, via("a.eth0", out, src, dst, "")...) // SYN: no token, still the request's
		pkts = append(pkts, via("a.eth0", out, src, dst, "GET / HTTP/1.1\r\nX-Labctl-Walk: "+token+"\r\n\r\n")...)
		pkts = append(pkts, via(out, "a.eth0", dst, src, `{"headers":{"X-Labctl-Walk":["`+token+`"]}}`)...)
	}
	req(40001, far, "b.eth0", "labctl-walk-00000000000000a1")
	req(40002, near, "a2.eth0", "labctl-walk-00000000000000a2")
	req(40003, far, "b.eth0", "labctl-walk-00000000000000a3")
	pkts = append(pkts, via("a.eth0", "b.eth0", probe, far, "GET /healthz HTTP/1.1\r\n\r\n")...) // no token: not counted
	c, crossed := SpreadCrossAZ(azs, pkts)
	if crossed != 2 {
		t.Errorf("%d requests crossed, want 2 (the two to the far endpoint)", crossed)
	}
	// Two requests to the far endpoint, three packets each way.
	if c.Packets != 6 || c.Crossings["us-east-1a -> us-east-1b"] != 4 || c.Crossings["us-east-1b -> us-east-1a"] != 2 {
		t.Errorf("counted %d packets %v; want the far requests' SYN, request and answer only", c.Packets, c.Crossings)
	}
}

func TestMonthlyCostIsBothDirectionsAtTheStatedRate(t *testing.T) {
	// 1000 bytes a request at 100 requests/s: 259.2 GB a month, billed
	// twice at $0.01/GB.
	if got := MonthlyCost(1000, 100); math.Abs(got-5.184) > 1e-9 {
		t.Errorf("MonthlyCost(1000, 100) = %v, want 5.184", got)
	}
}

func TestWalkTokenNeedsTheWholeToken(t *testing.T) {
	if walkToken([]byte("x labctl-walk-0123456789abcdef y")) != "labctl-walk-0123456789abcdef" || walkToken([]byte("labctl-walk-0123")) != "" {
		t.Error("walkToken must return the prefix and 16 hex digits, or nothing")
	}
}
