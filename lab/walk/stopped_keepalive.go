package walk

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeepAliveMargin is how far a walk's request keeps from the edges of the
// keep-alive race: after the target's keep-alive ran out, before the ALB's
// idle timeout does.
const KeepAliveMargin = 150 * time.Millisecond

// KeepAliveWait is how long an ALB walk waits, once it has primed a kept-alive
// connection to every target, before it sends its request: past the
// targets' keep-alive timeout, the idle time after which a target closes a
// connection, but under the ALB's idle timeout, after which the ALB closes
// it. A target whose keep-alive is longer than the ALB's idle timeout (the
// fix AWS advises) still holds the connection then. 0: no target closes
// idle connections, nothing to wait for.
func KeepAliveWait(keepAlive, albIdle time.Duration) time.Duration {
	if keepAlive <= 0 {
		return 0
	}
	return max(min(keepAlive+KeepAliveMargin, albIdle-KeepAliveMargin), 0)
}

// KeptAliveRace tells, from the capture, how a target lost the keep-alive
// race on the ALB's kept-alive connection c (c.Src the ALB node, c.Dst the
// target): the target's FIN left before the ALB's request arrived on the
// connection, and the target's kernel answered that request with a RST.
// target is the target's object; alb the ALB's, to say whether its FIN
// ever got there. Nil when the capture does not show that exchange.
func KeptAliveRace(c Conn, target, alb string, pkts []Packet) []string {
	fromTarget := func(p *Packet) bool {
		return p.Proto == "tcp" && p.Src == c.Dst.Addr() && p.SrcPort == c.Dst.Port() && p.Dst == c.Src.Addr() && p.DstPort == c.Src.Port()
	}
	var fin, req, rst *Packet
	var finSeen []string
	albSawFIN := false
	for i := range pkts {
		p := &pkts[i]
		switch {
		case fromTarget(p) && p.TCP.FIN && !p.TCP.RST:
			if p.Point.Object == target && p.Dir == Out && fin == nil {
				fin = p
			}
			if where := p.Point.String() + " " + string(p.Dir); fin != nil && !slices.Contains(finSeen, where) {
				finSeen = append(finSeen, where)
			}
			albSawFIN = albSawFIN || p.Point.Object == alb
		case p.Point.Object == target && p.Dir == In && p.Proto == "tcp" && len(p.Payload) > 0 && req == nil && fin != nil &&
			p.Src == c.Src.Addr() && p.SrcPort == c.Src.Port() && p.Dst == c.Dst.Addr() && p.DstPort == c.Dst.Port():
			req = p
		case fromTarget(p) && p.TCP.RST && p.Point.Object == target && p.Dir == Out && req != nil && rst == nil:
			rst = p
		}
	}
	if fin == nil || req == nil || rst == nil {
		return nil
	}
	const tag = "where it stopped: "
	out := []string{
		fmt.Sprintf("%s%s closed the ALB's kept-alive connection %s -> %s: its FIN left at %s (frame %d), %v before the ALB's request came on that connection (frame %d)",
			tag, target, c.Src, c.Dst, fin.Point, fin.Frame, req.Time.Sub(fin.Time).Round(time.Millisecond), req.Frame),
		fmt.Sprintf("%s%s's kernel answered the request on the closed connection with a RST (frame %d): the target's keep-alive timeout ran out "+
			"while the ALB still held the connection idle, and the ALB answered 502", tag, target, rst.Frame),
	}
	if !albSawFIN {
		out = append(out, fmt.Sprintf("%sthe FIN never reached %s: seen at %s only", tag, alb, strings.Join(finSeen, ", ")))
	}
	return out
}
