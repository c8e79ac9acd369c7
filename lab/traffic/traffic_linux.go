//go:build linux

// Package traffic is the lab's clients, shared by walks, benchmarks and
// health checks: ping, HTTP, UDP echo and DNS, each sent from inside a lab
// namespace from a source port known before the first packet, so a walk
// can find its own packets in the captures.
package traffic

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/labctl/labctl/lab/ns"
)

// Timeout bounds one exchange. Expiry is a functional failure (the
// path is broken), never a speed check: a working path answers in well
// under a millisecond.
const Timeout = 3 * time.Second

// SearchNames is the order a resolver with ndots:5 tries a name in.
func SearchNames(name string, search []string) []string {
	if strings.HasSuffix(name, ".") {
		return []string{name}
	}
	var out []string
	if strings.Count(name, ".") >= 5 {
		out = append(out, name+".")
	}
	for _, s := range search {
		out = append(out, name+"."+s+".")
	}
	if strings.Count(name, ".") < 5 {
		out = append(out, name+".")
	}
	return out
}

// resolve asks the cluster DNS from inside the pod, trying the search path
// as the pod's resolver would; it returns the ID and source port of the
// query that was answered, and the address.
func Resolve(n *ns.NS, port uint16, server netip.AddrPort, name string, search []string) (uint16, uint16, string, error) {
	var lastPort uint16
	for i, q := range SearchNames(name, search) {
		if i > 0 { // each name from a new source port, as a stub resolver does
			var err error
			if port, err = FreePort(n, "udp4", netip.Addr{}); err != nil {
				return 0, lastPort, "", err
			}
		}
		c, err := DialFrom(n, "udp4", netip.Addr{}, port, server)
		if err != nil {
			return 0, port, "", err
		}
		lastPort = port
		m := new(dns.Msg)
		m.SetQuestion(q, dns.TypeA)
		co := &dns.Conn{Conn: c}
		_ = c.SetDeadline(time.Now().Add(Timeout))
		err = co.WriteMsg(m)
		var r *dns.Msg
		if err == nil {
			r, err = co.ReadMsg()
		}
		c.Close()
		if err != nil {
			return m.Id, lastPort, "", fmt.Errorf("asking %s for %s: %w", server, q, err)
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				return m.Id, lastPort, a.A.String(), nil
			}
		}
	}
	return 0, lastPort, "", fmt.Errorf("%s: no name in the search path resolved", name)
}

// FreePort asks the kernel for a port no socket of the namespace holds,
// TIME_WAIT included, so a walk can bind its client to a port known before
// the first packet (and so find its SYN) without colliding with an earlier
// connection to the same destination.
func FreePort(n *ns.NS, network string, src netip.Addr) (uint16, error) {
	var port uint16
	err := n.Do(func() error {
		host := ""
		if src.IsValid() {
			host = src.String()
		}
		if network == "udp4" {
			c, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
			if err != nil {
				return err
			}
			port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
			return c.Close()
		}
		l, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			return err
		}
		port = uint16(l.Addr().(*net.TCPAddr).Port)
		return l.Close()
	})
	return port, err
}

// RandomPort is an ICMP echo identifier.
func RandomPort() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return 20000 + binary.BigEndian.Uint16(b[:])%40000
}

func NewToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "labctl-walk-" + hex.EncodeToString(b[:])
}

// ping sends one ICMP echo request with the token as payload from inside
// the source namespace and waits for the matching reply.
func Ping(n *ns.NS, dst netip.Addr, id uint16, token string) error {
	var c *icmp.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return fmt.Errorf("icmp socket in %s: %w", n.Name, err)
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(id), Seq: 1, Data: []byte(token)}}
	b, _ := msg.Marshal(nil)
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("sending echo request to %s: %w", dst, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(Timeout))
	buf := make([]byte, 1500)
	for {
		k, _, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no echo reply from %s: %w", dst, err)
		}
		m, err := icmp.ParseMessage(1, buf[:k])
		if err != nil {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && m.Type == ipv4.ICMPTypeEchoReply && string(e.Data) == token {
			return nil
		}
	}
}

// DialFrom opens a socket in the namespace, bound to the chosen source port
// so the walk can find its SYN.
func DialFrom(n *ns.NS, network string, src netip.Addr, port uint16, dst netip.AddrPort, timeout ...time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: Timeout}
		if len(timeout) > 0 {
			d.Timeout = timeout[0]
		}
		if network == "tcp4" {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice(), Port: int(port)}
		} else {
			d.LocalAddr = &net.UDPAddr{Port: int(port)}
		}
		var err error
		c, err = d.Dial(network, dst.String())
		return err
	})
	return c, err
}

// CountAnswers makes n requests, each on a new connection, and counts the
// pods that answered: how a spread over a Service's endpoints is seen.
func CountAnswers(src *ns.NS, from netip.Addr, dst netip.AddrPort, n int, counts map[string]int) (failures int, lastErr error) {
	for i := 0; i < n; i++ {
		a, err := HTTPGet(src, from, 0, dst, NewToken(), Timeout, "/")
		if err != nil {
			failures, lastErr = failures+1, err
			continue
		}
		counts[a.Object]++
	}
	return failures, lastErr
}

// HTTPGet makes one HTTP request over a fresh connection and decodes the
// app's answer.
func HTTPGet(n *ns.NS, src netip.Addr, port uint16, dst netip.AddrPort, token string, timeout time.Duration, path string) (*AppAnswer, error) {
	a, status, err := HTTPDo(n, src, port, dst, token, timeout, path)
	if err == nil && a == nil {
		// A walk's app answers 200; anything else is the walk's failure,
		// never a nil answer for the caller to trip on.
		return nil, fmt.Errorf("%s answered HTTP %d, not the app's 200", dst, status)
	}
	return a, err
}

// HTTPDo makes one HTTP request over a fresh connection and returns the
// app's answer when the status is 200, and the status.
func HTTPDo(n *ns.NS, src netip.Addr, port uint16, dst netip.AddrPort, token string, timeout time.Duration, path string) (*AppAnswer, int, error) {
	c, err := DialFrom(n, "tcp4", src, port, dst, timeout)
	if err != nil {
		return nil, 0, fmt.Errorf("connecting to %s: %w", dst, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	walkLine := ""
	if token != "" { // a walk's request, which the ALB tracks; a bench's is plain
		walkLine = WalkHeader + ": " + token + "\r\n"
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n", path, dst, walkLine)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("reading the answer from %s: %w", dst, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, resp.StatusCode, nil
	}
	var a AppAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("decoding the answer from %s (HTTP %d): %w", dst, resp.StatusCode, err)
	}
	return &a, resp.StatusCode, nil
}

func UDPEcho(n *ns.NS, port uint16, dst netip.AddrPort, token string, timeout time.Duration) (*AppAnswer, error) {
	c, err := DialFrom(n, "udp4", netip.Addr{}, port, dst, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(token)); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	k, err := c.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("no UDP answer from %s: %w", dst, err)
	}
	var a AppAnswer
	if err := json.Unmarshal(buf[:k], &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// QueryA asks one DNS server for the A records of a name, from inside a namespace.
func QueryA(n *ns.NS, port uint16, server netip.AddrPort, name string) ([]netip.Addr, uint32, error) {
	c, err := DialFrom(n, "udp4", netip.Addr{}, port, server)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	co := &dns.Conn{Conn: c}
	_ = c.SetDeadline(time.Now().Add(Timeout))
	if err := co.WriteMsg(m); err != nil {
		return nil, 0, err
	}
	r, err := co.ReadMsg()
	if err != nil {
		return nil, 0, fmt.Errorf("asking %s for %s: %w", server, name, err)
	}
	var out []netip.Addr
	var ttl uint32
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			out = append(out, ip)
			ttl = a.Hdr.Ttl
		}
	}
	return out, ttl, nil
}

// IsTimeout reports whether err is a network timeout: a connection that got
// no answer, rather than one refused or reset.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// AppAnswer is what every pod's and host's app answers: who it is and the
// addresses it saw, so a walk can prove what NAT did by the time the
// packet arrived.
type AppAnswer struct {
	Object    string              `json:"object"`
	Namespace string              `json:"namespace,omitempty"`
	Node      string              `json:"node,omitempty"`
	Local     string              `json:"local"`
	Remote    string              `json:"remote"`
	Headers   map[string][]string `json:"headers,omitempty"`
	Echo      string              `json:"echo,omitempty"`
}

// WalkHeader carries a walk's token in its HTTP request.
const WalkHeader = "X-Labctl-Walk"
