package agent

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// keepAliveCloser makes an app server close a kept-alive connection the
// way a server with a short keep-alive timeout does, at the worst moment:
// a request that arrives on a connection idle for at least limit() finds
// it closed (the server's idle timer ran out as the request was on its
// way; the lab settles that race against the client every time). The
// closed connection gets no answer: the client sees the FIN. This is the
// race behind ALB 502s when a target's keep-alive timeout is shorter than
// the ALB's idle timeout ("HTTP 502: Bad gateway", ALB troubleshooting,
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html).
// limit 0 keeps connections as long as the client likes.
type keepAliveCloser struct {
	limit func() time.Duration
	mu    sync.Mutex
	since map[net.Conn]time.Time // when each idle connection went idle
}

// connState is an http.Server's ConnState hook. StateActive comes with the
// first bytes of a request, before it is read.
func (k *keepAliveCloser) connState(c net.Conn, s http.ConnState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.since == nil {
		k.since = map[net.Conn]time.Time{}
	}
	switch s {
	case http.StateIdle:
		k.since[c] = time.Now()
	case http.StateActive:
		idleSince, kept := k.since[c]
		delete(k.since, c)
		if limit := k.limit(); kept && limit > 0 && time.Since(idleSince) >= limit {
			c.Close()
		}
	case http.StateClosed, http.StateHijacked:
		delete(k.since, c)
	}
}
