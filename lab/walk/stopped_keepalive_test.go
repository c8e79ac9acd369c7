package walk

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestKeepAliveWaitIsPastTheTargetsKeepAliveAndUnderTheALBsIdleTimeout(t *testing.T) {
	idle := 3 * time.Second
	if w := KeepAliveWait(250*time.Millisecond, idle); w <= 250*time.Millisecond || w >= idle {
		t.Errorf("keep-alive 250 ms, ALB idle 3 s: wait %v, want between", w)
	}
	if w := KeepAliveWait(65*time.Second/20, idle); w >= idle || w < idle-time.Second {
		t.Errorf("keep-alive longer than the ALB's idle timeout: wait %v, want just under the idle timeout %v", w, idle)
	}
	if w := KeepAliveWait(0, idle); w != 0 {
		t.Errorf("no keep-alive: wait %v, want none", w)
	}
}

// raceCapture is what the capture at a target shows when it loses the
// race: the request and answer that primed the connection, the target's
// FIN, the ALB's next request on the connection, the target's RST.
func raceCapture(c Conn) []Packet {
	pod := Point{Object: "rating-1", Iface: "eth0"}
	node := Point{Object: "node81", Iface: "enia1"}
	at := time.Unix(1000, 0)
	fromALB := func(pt Point, dir Dir, ms int, payload string, frame int) Packet {
		return Packet{Point: pt, Dir: dir, Proto: "tcp", Src: c.Src.Addr(), SrcPort: c.Src.Port(), Dst: c.Dst.Addr(), DstPort: c.Dst.Port(),
			Payload: []byte(payload), Time: at.Add(time.Duration(ms) * time.Millisecond), Frame: frame, TCP: TCPInfo{ACK: true}}
	}
	fromPod := func(pt Point, dir Dir, ms int, tcp TCPInfo, frame int) Packet {
		return Packet{Point: pt, Dir: dir, Proto: "tcp", Src: c.Dst.Addr(), SrcPort: c.Dst.Port(), Dst: c.Src.Addr(), DstPort: c.Src.Port(),
			Time: at.Add(time.Duration(ms) * time.Millisecond), Frame: frame, TCP: tcp}
	}
	return []Packet{
		fromALB(pod, In, 0, "GET /rating HTTP/1.1", 1),
		fromPod(pod, Out, 1, TCPInfo{ACK: true}, 2),
		fromPod(pod, Out, 251, TCPInfo{FIN: true, ACK: true}, 3),
		fromPod(node, In, 251, TCPInfo{FIN: true, ACK: true}, 4),
		fromALB(pod, In, 400, "GET /rating HTTP/1.1", 5),
		fromPod(pod, Out, 400, TCPInfo{RST: true}, 6),
	}
}

func TestKeptAliveRaceNamesTheTargetsFINAndRSTAndWhereTheFINWasLast(t *testing.T) {
	c := Conn{Src: netip.MustParseAddrPort("192.168.100.4:40000"), Dst: netip.MustParseAddrPort("192.168.1.81:80")}
	got := strings.Join(KeptAliveRace(c, "rating-1", "alb-web", raceCapture(c)), "\n")
	for _, want := range []string{"rating-1 closed the ALB's kept-alive connection 192.168.100.4:40000 -> 192.168.1.81:80",
		"FIN left at rating-1/eth0 (frame 3), 149ms before the ALB's request came on that connection (frame 5)",
		"answered the request on the closed connection with a RST (frame 6)", "502",
		"the FIN never reached alb-web: seen at rating-1/eth0 out, node81/enia1 in only"} {
		if !strings.Contains(got, want) {
			t.Errorf("notes lack %q:\n%s", want, got)
		}
	}
	pkts := raceCapture(c)
	pkts[3].Point = Point{Object: "alb-web", Iface: "eth1"}
	if got := strings.Join(KeptAliveRace(c, "rating-1", "alb-web", pkts), "\n"); strings.Contains(got, "never reached") {
		t.Errorf("the ALB saw the FIN, yet: %s", got)
	}
}

func TestKeptAliveRaceIsNothingWithoutAFINBeforeTheRequestOrARSTAfterIt(t *testing.T) {
	c := Conn{Src: netip.MustParseAddrPort("192.168.100.4:40000"), Dst: netip.MustParseAddrPort("192.168.1.81:80")}
	noRST := raceCapture(c)[:5]
	if got := KeptAliveRace(c, "rating-1", "alb-web", noRST); got != nil {
		t.Errorf("no RST: %v", got)
	}
	// The request before the FIN: the connection was open when it came.
	r := raceCapture(c)
	late := []Packet{r[0], r[1], r[4], r[2], r[5]}
	if got := KeptAliveRace(c, "rating-1", "alb-web", late); got != nil {
		t.Errorf("request before the FIN: %v", got)
	}
	other := c
	other.Src = netip.MustParseAddrPort("192.168.100.4:40001")
	if got := KeptAliveRace(other, "rating-1", "alb-web", raceCapture(c)); got != nil {
		t.Errorf("another connection's FIN and RST: %v", got)
	}
}
