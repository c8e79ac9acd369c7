package agent

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// keepAliveCloser gives an app server a keep-alive idle timeout, as
// Node.js's server.keepAliveTimeout (5 s by default) or gunicorn's
// --keep-alive (2 s) do: a connection idle for limit() is closed by the
// server, which sends a FIN. A client that sends its next request on the
// connection before that FIN reaches it gets a RST from the server's
// kernel; an ALB answers that request 502. This is the race behind ALB
// 502s when a target's keep-alive is shorter than the ALB's idle timeout
// ("HTTP 502: Bad gateway", ALB troubleshooting,
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-troubleshooting.html).
// limit 0 keeps connections as long as the client likes.
type keepAliveCloser struct {
	limit func() time.Duration
	mu    sync.Mutex
	idle  map[net.Conn]*time.Timer // the close timer of each idle connection
}

// connState is an http.Server's ConnState hook. StateActive comes with the
// first bytes of a request, before it is read.
func (k *keepAliveCloser) connState(c net.Conn, s http.ConnState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.idle == nil {
		k.idle = map[net.Conn]*time.Timer{}
	}
	if t := k.idle[c]; t != nil {
		t.Stop()
		delete(k.idle, c)
	}
	if s != http.StateIdle {
		return
	}
	if limit := k.limit(); limit > 0 {
		k.idle[c] = time.AfterFunc(limit, func() {
			k.mu.Lock()
			_, still := k.idle[c]
			delete(k.idle, c)
			k.mu.Unlock()
			if still {
				c.Close() // no unread request: the kernel sends a FIN
			}
		})
	}
}
