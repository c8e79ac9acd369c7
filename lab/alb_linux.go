//go:build linux

package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/ns"
)

// albConnectTimeout is how long an ALB waits to connect to a target before
// answering 504 (reference §2.4).
const albConnectTimeout = 10 * time.Second

// albHandler is one ALB node: a full HTTP proxy that terminates the client's
// connection and opens its own to the target from the node's private
// address. It picks the rule by path in priority order (404 when none
// matches), adds the X-Forwarded headers, and answers 502, 503 and 504 as
// an ALB does.
func (a *agent) albHandler(h *ns.NS, lbName string, node lb.Node) http.Handler {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := h.Do(func() error {
				d := net.Dialer{Timeout: albConnectTimeout, LocalAddr: &net.TCPAddr{IP: node.IP.AsSlice()}}
				var err error
				c, err = d.DialContext(ctx, "tcp4", addr)
				return err
			})
			return c, err
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     60 * time.Second,
	}
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
		proxy := &httputil.ReverseProxy{
			Transport: transport,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host = "http", t.String()
				pr.Out.Host = strings.ToLower(strings.TrimSuffix(req.Host, ":80"))
				xff := client
				if prior := req.Header.Get("X-Forwarded-For"); prior != "" {
					xff = prior + ", " + client
				}
				pr.Out.Header.Set("X-Forwarded-For", xff)
				pr.Out.Header.Set("X-Forwarded-Proto", "http")
				pr.Out.Header.Set("X-Forwarded-Port", "80")
				if req.Header.Get("X-Amzn-Trace-Id") == "" {
					pr.Out.Header.Set("X-Amzn-Trace-Id", traceID())
				}
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
		proxy.ServeHTTP(w, req)
	})
}

// albError answers as an ALB does: a small HTML page with the status.
func albError(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Server", "awselb/2.0")
	w.WriteHeader(code)
	fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n",
		code, text, code, text)
}

// traceID is an X-Amzn-Trace-Id root: 1-<epoch seconds, hex>-<24 hex digits>.
func traceID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%s", time.Now().Unix(), hex.EncodeToString(b[:]))
}
