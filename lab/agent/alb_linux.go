//go:build linux

package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/traffic"
)

// How long the lab's ALB waits to connect to a target, and then for its
// answer, before it answers 504: the ALB's own timeouts, scaled like the
// health checks (lb.TimeScale), so a 504 takes 0.5 s or 3 s, not 10 or 60.
const (
	ALBConnectTimeout = lb.ALBConnectTimeout / lb.TimeScale
	ALBIdleTimeout    = lb.ALBIdleTimeout / lb.TimeScale
)

// albHandler is one ALB node: a full HTTP proxy that terminates the client's
// connection and opens its own to the target from the node's private
// address. It picks the rule by path in priority order (404 when none
// matches), adds the X-Forwarded headers, and answers 502, 503 and 504 as
// an ALB does.
func (a *agent) albHandler(h *ns.NS, lbName string, node lb.Node) http.Handler {
	transport := albTransport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		// Bind a port the kernel says is free, so the connection is
		// known even if it never opens (a walk follows it to the RST
		// or to the silence). A health check may take the port in
		// between; then pick another.
		var c net.Conn
		var err error
		for range 3 {
			var port uint16
			if port, err = traffic.FreePort(h, "tcp4", node.IP); err != nil {
				return nil, err
			}
			local := &net.TCPAddr{IP: node.IP.AsSlice(), Port: int(port)}
			if rec, ok := ctx.Value(albConnKey{}).(*albConn); ok {
				rec.setDialed(local.String(), addr)
			}
			err = h.Do(func() error {
				d := net.Dialer{Timeout: ALBConnectTimeout, LocalAddr: local}
				var err error
				c, err = d.DialContext(ctx, "tcp4", addr)
				return err
			})
			if !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
		}
		return c, err
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r, l := a.lbFor(lbName)
		if l == nil {
			http.Error(w, "load balancer gone", http.StatusServiceUnavailable)
			return
		}
		rule := l.Match(req.URL.Path)
		if rule == nil {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound) // the LBC's default fixed-response 404
			return
		}
		if len(rule.Group.Targets) == 0 {
			albError(w, http.StatusServiceUnavailable, "Service Temporarily Unavailable")
			return
		}
		t, ok := r.pick(rule.Group, node.AZ)
		if !ok {
			albError(w, http.StatusServiceUnavailable, "Service Temporarily Unavailable")
			return
		}
		client, _, _ := net.SplitHostPort(req.RemoteAddr)
		if token := req.Header.Get(traffic.WalkHeader); token != "" {
			// A walk's request: remember the connection that carries it
			// to the target, a new one (DialContext) or a reused one.
			rec := &albConn{}
			a.rememberALBConn(token, rec)
			ctx := httptrace.WithClientTrace(context.WithValue(req.Context(), albConnKey{}, rec), &httptrace.ClientTrace{
				GotConn: func(i httptrace.GotConnInfo) {
					rec.setGot(i.Conn.LocalAddr().String(), i.Conn.RemoteAddr().String(), i.Reused, i.IdleTime)
				},
			})
			req = req.WithContext(ctx)
		}
		albProxy(transport, t.String(), client).ServeHTTP(w, req)
	})
}

// albProxy forwards one request to target (host:port) as an ALB node
// does: the client's headers and body as they are, plus X-Forwarded-For
// (appending client), -Proto, -Port and X-Amzn-Trace-Id; Host lower-cased
// without the listener's port 80 (ELB user guide, "HTTP headers and
// Application Load Balancers"); no retry, and 502 or 504 when the target
// fails. transport must have DisableCompression set.
func albProxy(transport http.RoundTripper, target, client string) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			req := pr.In
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", target
			// Rewrite drops these from the client's request; an ALB
			// passes them through (it adds only the ones below).
			for _, k := range []string{"Forwarded", "X-Forwarded-Host"} {
				if v := req.Header[k]; v != nil {
					pr.Out.Header[k] = v
				}
			}
			noReplay(pr.Out)
			pr.Out.Host = strings.ToLower(strings.TrimSuffix(req.Host, ":80"))
			xff := client
			if prior := req.Header.Get("X-Forwarded-For"); prior != "" {
				xff = prior + ", " + client
			}
			pr.Out.Header.Set("X-Forwarded-For", xff)
			pr.Out.Header.Set("X-Forwarded-Proto", "http")
			pr.Out.Header.Set("X-Forwarded-Port", "80")
			pr.Out.Header.Set("X-Amzn-Trace-Id", amznTraceID(req.Header.Get("X-Amzn-Trace-Id")))
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				albError(w, http.StatusGatewayTimeout, "Gateway Time-out")
				return
			}
			albError(w, http.StatusBadGateway, "Bad Gateway")
		},
	}
}

// albTransport is an ALB node's pool of connections to its targets, each
// opened by dial.
func albTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		DialContext: dial,
		// An ALB forwards the client's Accept-Encoding (or none) and the
		// target's body as it is: Go's transport would otherwise ask for
		// gzip itself and unzip the answer in flight.
		DisableCompression:    true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       ALBIdleTimeout,
		ResponseHeaderTimeout: ALBIdleTimeout,
	}
}

// albConn is the connection an ALB node used, or tried, for one request:
// got is the one the request was sent on (httptrace's GotConn, the last
// one if a retry dialled again); dialed the last one dialled for it, which
// is all there is when no connection opened. The transport may hand a
// connection dialled for one request to another, so got wins.
type albConn struct {
	mu          sync.Mutex
	got, dialed [2]string // local, remote
	// kept: got was an idle connection kept alive from an earlier request,
	// idle for idle.
	kept bool
	idle time.Duration
}

type albConnKey struct{}

func (c *albConn) setGot(local, remote string, kept bool, idle time.Duration) {
	c.mu.Lock()
	c.got, c.kept, c.idle = [2]string{local, remote}, kept, idle
	c.mu.Unlock()
}

func (c *albConn) setDialed(local, remote string) {
	c.mu.Lock()
	c.dialed = [2]string{local, remote}
	c.mu.Unlock()
}

// get is the connection, and how long it had been idle if it was kept
// alive (-1 for a new one).
func (c *albConn) get() (string, string, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got[0] != "" {
		if c.kept {
			return c.got[0], c.got[1], c.idle
		}
		return c.got[0], c.got[1], -1
	}
	return c.dialed[0], c.dialed[1], -1
}

// albConnsKept is how many walk requests' connections the app server
// remembers; a walk asks right after its request.
const albConnsKept = 64

func (a *agent) rememberALBConn(token string, c *albConn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.albConns == nil {
		a.albConns = map[string]*albConn{}
	}
	_, again := a.albConns[token]
	a.albConns[token] = c
	if again {
		return // a token used twice (the ALB bench's) keeps one place in the order
	}
	a.albOrder = append(a.albOrder, token)
	if len(a.albOrder) > albConnsKept {
		delete(a.albConns, a.albOrder[0])
		a.albOrder = a.albOrder[1:]
	}
}

// albConnOf answers the control command "albconn <token>": the ALB's
// connection to the target for that walk request, "local remote", or
// "none" if no ALB saw the token.
func (a *agent) albConnOf(token string) string {
	a.mu.Lock()
	c := a.albConns[token]
	a.mu.Unlock()
	if c == nil {
		return "none"
	}
	l, r, idle := c.get()
	if l == "" {
		return "none"
	}
	if idle >= 0 {
		return fmt.Sprintf("%s %s kept %d", l, r, idle.Milliseconds())
	}
	return l + " " + r + " new"
}

// albError answers as an ALB does: a small HTML page with the status.
func albError(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Server", "awselb/2.0")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n",
		code, text, code, text)
}

// noReplay keeps Go's transport from sending a request again on a new
// connection when a kept-alive one dies under it (it does for requests it
// can replay: GET, HEAD, OPTIONS without a body). An ALB never retries: the
// client gets a 502. The transport replays only a request whose body it can
// get again, so a bodiless request gets an empty body it cannot; for GET,
// HEAD, OPTIONS and DELETE the transport finds it empty and sends no body
// and no length, as the client did. Other methods without a body keep none
// (an unknown-length body would go out chunked); they are replayed only
// with an Idempotency-Key header.
func noReplay(out *http.Request) {
	if out.Body != nil && out.Body != http.NoBody {
		return // a client's body: the transport cannot read it twice
	}
	switch out.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
		out.Body, out.GetBody, out.ContentLength = io.NopCloser(strings.NewReader("")), nil, 0
	}
}

// amznTraceID is the X-Amzn-Trace-Id an ALB sends on: a new Root when the
// client sent none, else the client's with the ALB's Self field first
// ("Self=1-…;Root=…;custom"), as ALB request tracing does
// (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-request-tracing.html).
func amznTraceID(prior string) string {
	id := traceID()
	if prior == "" {
		return id
	}
	if strings.Contains(prior, "Root=1-") {
		// The client's own Self, if any, is replaced by the ALB's.
		var keep []string
		for _, f := range strings.Split(prior, ";") {
			if !strings.HasPrefix(strings.TrimSpace(f), "Self=") {
				keep = append(keep, f)
			}
		}
		return "Self=" + strings.TrimPrefix(id, "Root=") + ";" + strings.Join(keep, ";")
	}
	return id // no valid Root: the ALB makes its own
}

// traceID is an X-Amzn-Trace-Id root: 1-<epoch seconds, hex>-<24 hex digits>.
func traceID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}
