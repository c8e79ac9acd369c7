package agent

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Two requests on one connection, the second after idle: with a limit
// shorter than the idle time the second finds the connection closed.
func secondRequestOnKeptConn(t *testing.T, limit, idle time.Duration) (string, error) {
	t.Helper()
	var lim atomic.Int64
	lim.Store(int64(limit))
	k := &keepAliveCloser{limit: func() time.Duration { return time.Duration(lim.Load()) }}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ConnState = k.connState
	srv.Start()
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	get := func() (string, error) {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(); got != "ok" || err != nil {
		t.Fatalf("first request: %q %v", got, err)
	}
	time.Sleep(idle)
	return get()
}

func TestShortKeepAliveClosesAKeptConnectionAsTheNextRequestComes(t *testing.T) {
	got, err := secondRequestOnKeptConn(t, 50*time.Millisecond, 150*time.Millisecond)
	if err == nil || !(err == io.EOF || err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "reset")) {
		t.Errorf("request after 150 ms idle with a 50 ms keep-alive: %q, %v; want the connection closed unanswered", got, err)
	}
}

func TestShortKeepAliveClosesAnIdleConnectionByItselfWithAFIN(t *testing.T) {
	k := &keepAliveCloser{limit: func() time.Duration { return 50 * time.Millisecond }}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ConnState = k.connState
	srv.Start()
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	start := time.Now()
	// Nothing sent: the server closes the idle connection on its own, and
	// the client reads the FIN as EOF, after about the keep-alive.
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (the server's FIN)", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Errorf("closed after %v idle, want about the 50 ms keep-alive", d)
	}
}

func TestKeepAliveWithinTheLimitOrOffKeepsTheConnection(t *testing.T) {
	if got, err := secondRequestOnKeptConn(t, time.Second, 50*time.Millisecond); got != "ok" || err != nil {
		t.Errorf("idle 50 ms within a 1 s keep-alive: %q, %v", got, err)
	}
	if got, err := secondRequestOnKeptConn(t, 0, 100*time.Millisecond); got != "ok" || err != nil {
		t.Errorf("no limit: %q, %v", got, err)
	}
}
