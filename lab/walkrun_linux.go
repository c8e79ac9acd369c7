//go:build linux

package lab

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
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/labctl/labctl/lab/capture"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// trafficTimeout bounds one exchange. Expiry is a functional failure (the
// path is broken), never a speed check: a working path answers in well
// under a millisecond.
const trafficTimeout = 3 * time.Second

// Run is one walk run: its report and where its capture went.
type Run struct {
	Report *walk.Report
	Pcap   string
	// TrafficErr is set when the exchange itself failed (no answer).
	TrafficErr error
	// App is what the server app answered, when it answered.
	App *AppAnswer
}

// Session holds a lab's open namespaces for a series of walk runs.
type Session struct {
	Lab  string
	Topo *spec.Topology
	open map[string]*ns.NS
}

// OpenSession loads a lab that is up.
func OpenSession(lab string) (*Session, error) {
	t, st, err := Load(lab)
	if err != nil {
		return nil, err
	}
	if !st.Complete {
		return nil, fmt.Errorf("lab %s was not completely built (up was interrupted): labctl down %s", lab, lab)
	}
	return &Session{Lab: lab, Topo: t, open: map[string]*ns.NS{}}, nil
}

// NS opens (once) the namespace of a topology object.
func (s *Session) NS(object string) (*ns.NS, error) {
	if n, ok := s.open[object]; ok {
		return n, nil
	}
	n, err := ns.Open(spec.NSName(s.Lab, object))
	if err != nil {
		return nil, err
	}
	s.open[object] = n
	return n, nil
}

// Close releases the namespaces.
func (s *Session) Close() {
	for _, n := range s.open {
		n.Close()
	}
}

// Walk runs one flow walk: captures at every point, real traffic from the
// walk's source, and a check of every hop. The pcapng goes to outDir.
func (s *Session) Walk(w spec.Walk, outDir string) (*Run, error) {
	port := randomPort()
	e, err := walk.Derive(s.Topo, w, port)
	if err != nil {
		return nil, err
	}
	caps, err := capture.OpenAll(s.NS, e.Points)
	if err != nil {
		return nil, err
	}
	defer caps.Close()

	token := newToken()
	cl := &walk.Classifier{Proto: w.Protocol, Token: []byte(token)}
	run := &Run{}
	src, err := s.NS(w.From)
	if err != nil {
		return nil, err
	}
	switch w.Protocol {
	case "icmp":
		run.TrafficErr = ping(src, e.To.IP, port, token)
	case "tcp":
		run.App, run.TrafficErr = httpGet(src, e.From.IP, port, netip.AddrPortFrom(e.To.IP, uint16(w.Port)), token)
	case "udp":
		run.App, run.TrafficErr = udpEcho(src, port, netip.AddrPortFrom(e.To.IP, uint16(w.Port)), token)
	}
	frames, err := caps.Drain()
	if err != nil {
		return nil, err
	}
	pkts := make([]walk.Packet, len(frames))
	for i, f := range frames {
		pkts[i] = walk.Decode(f.Data)
		pkts[i].Point, pkts[i].Dir, pkts[i].Time, pkts[i].Frame = f.Point, f.Dir, f.Time, i+1
	}
	if w.Protocol == "tcp" {
		cl.FindISN(e, pkts)
	}
	run.Report = walk.Check(e, cl, pkts)
	if run.TrafficErr != nil {
		run.Report.Notes = append(run.Report.Notes, "traffic: "+run.TrafficErr.Error())
	}
	if run.App != nil {
		run.Report.Notes = append(run.Report.Notes, fmt.Sprintf("%s's app saw the client as %s", run.App.Object, run.App.Remote))
	}
	run.Pcap, err = writePcap(outDir, s.Lab, w.Name, e, cl, frames, pkts)
	return run, err
}

func randomPort() uint16 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return 20000 + binary.BigEndian.Uint16(b[:])%40000
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "labctl-walk-" + hex.EncodeToString(b[:])
}

// ping sends one ICMP echo request with the token as payload from inside
// the source namespace and waits for the matching reply.
func ping(n *ns.NS, dst netip.Addr, id uint16, token string) error {
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
	_ = c.SetReadDeadline(time.Now().Add(trafficTimeout))
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

// dialFrom opens a socket in the namespace, bound to the chosen source port
// so the walk can find its SYN.
func dialFrom(n *ns.NS, network string, src netip.Addr, port uint16, dst netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: trafficTimeout}
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

// httpGet makes one HTTP request over a fresh connection and decodes the
// app's answer.
func httpGet(n *ns.NS, src netip.Addr, port uint16, dst netip.AddrPort, token string) (*AppAnswer, error) {
	c, err := dialFrom(n, "tcp4", src, port, dst)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", dst, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(trafficTimeout))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nX-Labctl-Walk: %s\r\nConnection: close\r\n\r\n", dst, token)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, fmt.Errorf("reading the answer from %s: %w", dst, err)
	}
	defer resp.Body.Close()
	var a AppAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&a); err != nil {
		return nil, fmt.Errorf("decoding the answer from %s (HTTP %d): %w", dst, resp.StatusCode, err)
	}
	return &a, nil
}

func udpEcho(n *ns.NS, port uint16, dst netip.AddrPort, token string) (*AppAnswer, error) {
	c, err := dialFrom(n, "udp4", netip.Addr{}, port, dst)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(trafficTimeout))
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

// writePcap writes the run's frames, one interface block per capture point,
// with each flow packet's leg as a frame comment.
func writePcap(dir, lab, walkName string, e *walk.Expectation, cl *walk.Classifier, frames []capture.Frame, pkts []walk.Packet) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s-%s.pcapng", lab, walkName, time.Now().UTC().Format("20060102T150405.000"))
	path := filepath.Join(dir, strings.ReplaceAll(name, ":", ""))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	pw, err := capture.NewPcapngWriter(f, fmt.Sprintf("labctl walk %s of lab %s: %s", walkName, lab, e.Walk.Title))
	if err != nil {
		return "", err
	}
	ids := map[walk.Point]uint32{}
	for _, pt := range e.Points {
		id, err := pw.AddInterface(pt.String(), "lab "+lab+", namespace "+spec.NSName(lab, pt.Object))
		if err != nil {
			return "", err
		}
		ids[pt] = id
	}
	for i, fr := range frames {
		comment := ""
		if leg := cl.Leg(&pkts[i]); leg != "" {
			comment = "labctl: " + string(leg)
		}
		if err := pw.WritePacket(ids[fr.Point], fr.Time, fr.Data, fr.Len, fr.Dir == walk.Out, comment); err != nil {
			return "", err
		}
	}
	return path, pw.Flush()
}

var errNoLab = errors.New("no lab is up")

// Resolve picks the lab to act on: the one named, or the only one up.
func Resolve(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	labs, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", fmt.Errorf("%w: labctl up <topology> first", errNoLab)
	case 1:
		return labs[0], nil
	}
	return "", fmt.Errorf("%d labs are up (%s): say which with --lab", len(labs), strings.Join(labs, ", "))
}
