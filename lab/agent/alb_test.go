//go:build linux

package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// frontALB serves albProxy to target on a local port, with the production
// transport dialling plainly.
func frontALB(t *testing.T, target string) *httptest.Server {
	t.Helper()
	tr := albTransport((&net.Dialer{Timeout: time.Second}).DialContext)
	t.Cleanup(tr.CloseIdleConnections)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		albProxy(tr, target, "203.0.113.7").ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front
}

// rawRequest sends req as written on a new connection and reads the answer.
func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestALBPassesClientHeadersAndGzipBodyUntouched(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write([]byte(strings.Repeat("the target's own gzip body ", 20)))
	_ = zw.Close()
	var seen http.Header
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(zipped.Bytes())
	}))
	defer target.Close()
	front := frontALB(t, target.Listener.Addr().String())

	resp := rawRequest(t, front.Listener.Addr().String(),
		"GET /x HTTP/1.1\r\nHost: Portal.Example.com\r\nX-Custom: a\r\nX-Forwarded-Host: shop\r\nConnection: close\r\n\r\n")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var names []string
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	want := "X-Amzn-Trace-Id X-Custom X-Forwarded-For X-Forwarded-Host X-Forwarded-Port X-Forwarded-Proto"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("target saw headers %q, want exactly %q (the client's plus the ALB's)", got, want)
	}
	if seen.Get("X-Forwarded-For") != "203.0.113.7" || !strings.HasPrefix(seen.Get("X-Amzn-Trace-Id"), "Root=1-") {
		t.Errorf("added headers: %v", seen)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, zipped.Bytes()) {
		t.Errorf("client got Content-Encoding %q and %d bytes, want the target's gzip body (%d bytes) as sent",
			resp.Header.Get("Content-Encoding"), len(body), zipped.Len())
	}
}

func TestALBAppendsXFFAndAddsSelfToClientTraceID(t *testing.T) {
	var seen http.Header
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Clone() }))
	defer target.Close()
	front := frontALB(t, target.Listener.Addr().String())
	rawRequest(t, front.Listener.Addr().String(), "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\n"+
		"X-Amzn-Trace-Id: Root=1-67891233-abcdef012345678912345678;CalledFrom=app\r\nConnection: close\r\n\r\n")
	if got := seen.Get("X-Forwarded-For"); got != "10.0.0.1, 203.0.113.7" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	tid := seen.Get("X-Amzn-Trace-Id")
	if !strings.HasPrefix(tid, "Self=1-") || !strings.HasSuffix(tid, ";Root=1-67891233-abcdef012345678912345678;CalledFrom=app") {
		t.Errorf("X-Amzn-Trace-Id = %q, want Self=1-…; then the client's fields", tid)
	}
}

// A target that closes a kept-alive connection as the next request comes
// (its keep-alive timer ran out first) gets no second try on a new
// connection: the client sees 502, as from an ALB.
func TestALBAnswers502AndNeverRetriesWhenTargetClosesKeptConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if n == 1 && i == 1 {
						return // the first connection's second request: closed unanswered
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}(c)
		}
	}()
	front := frontALB(t, ln.Addr().String())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func() int {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, front.URL+"/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != 200 {
		t.Fatalf("first request: %d", s)
	}
	if s := get(); s != http.StatusBadGateway {
		t.Errorf("second request on the kept connection the target closed: %d, want 502", s)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the target accepted %d connections, want 1 (the ALB retried on a new one)", n)
	}
}
