//go:build linux

package run

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/pki"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// cpFlow is a control plane walk (CP1-CP4): the client resolves the
// cluster endpoint's name (the VPC resolver inside the VPC, Route 53 from
// the internet), then opens TCP 443 to the address it picked, completes
// TLS against the lab CA and asks GET /version. From an API server
// instance (CP3) it opens TCP 10250 to a kubelet and asks GET /healthz.
type cpFlow struct {
	s       *Session
	w       spec.Walk
	client  walk.Endpoint
	port    uint16
	target  walk.CPTarget
	server  netip.AddrPort // the DNS server asked
	answers []netip.Addr
	status  int
	peer    string // the address the server saw
	answer  string // the instance that answered
}

func (s *Session) newCPFlow(w spec.Walk) (*cpFlow, error) {
	if s.Topo.ControlPlane == nil {
		return nil, fmt.Errorf("walk %s: the topology has no control plane", w.Name)
	}
	client, err := walk.CPClient(s.Topo, w)
	if err != nil {
		return nil, err
	}
	return &cpFlow{s: s, w: w, client: client}, nil
}

// points resolves the endpoint first: which address the client uses
// decides where the flow goes, so it is known before the capture starts.
// The DNS exchange itself is judged by its answer (a note), not by hops.
func (f *cpFlow) points() ([]walk.Point, error) {
	t := f.s.Topo
	if t.Node(f.w.To) == nil { // to the endpoint: resolve it
		src, err := f.s.NS(f.w.From)
		if err != nil {
			return nil, err
		}
		f.server = netip.AddrPortFrom(spec.VPCResolver(t.VPC.CIDR), 53)
		if f.client.Internet {
			if t.Internet == nil || t.Internet.DNS == nil {
				return nil, fmt.Errorf("walk %s: %s has no DNS server to ask (internet.dns)", f.w.Name, f.w.From)
			}
			f.server = netip.AddrPortFrom(t.Internet.DNS.IP, 53)
		}
		port, err := traffic.FreePort(src, "udp4", netip.Addr{})
		if err != nil {
			return nil, err
		}
		if f.answers, _, err = traffic.QueryA(src, port, f.server, t.EndpointName()); err != nil {
			return nil, fmt.Errorf("walk %s: resolving the cluster endpoint: %w", f.w.Name, err)
		}
		if f.target, err = walk.CPTargetOf(t, f.w.From, f.answers); err != nil {
			return nil, fmt.Errorf("walk %s: %w", f.w.Name, err)
		}
	}
	e, err := walk.DeriveControlPlane(t, f.w, 0, f.target)
	if err != nil {
		return nil, err
	}
	return e.Points, nil
}

func (f *cpFlow) prepare() error { return nil }

func (f *cpFlow) send(run *Run) (*walk.Classifier, error) {
	t := f.s.Topo
	cl := &walk.Classifier{Proto: "tcp"}
	src, err := f.s.NS(f.w.From)
	if err != nil {
		return nil, err
	}
	if f.port, err = traffic.FreePort(src, "tcp4", f.client.IP); err != nil {
		return nil, err
	}
	dst := netip.AddrPortFrom(f.target.Addr, spec.APIServerPort)
	serverName, path := t.EndpointName(), "/version"
	if n := t.Node(f.w.To); n != nil {
		dst = netip.AddrPortFrom(n.ENI(0).IP, spec.KubeletPort)
		serverName, path = n.ENI(0).IP.String(), "/healthz"
	}
	timeout := traffic.Timeout
	if f.w.Expect == "drop" {
		timeout = dropTimeout
	}
	f.status, f.peer, f.answer, run.TrafficErr = f.get(dst, serverName, path, timeout)
	return cl, nil
}

// get opens the walk's connection and asks path over TLS, trusting only
// the lab CA.
func (f *cpFlow) get(dst netip.AddrPort, serverName, path string, timeout time.Duration) (int, string, string, error) {
	h, err := f.s.NS(f.w.From)
	if err != nil {
		return 0, "", "", err
	}
	caPEM, err := os.ReadFile(state.Path(f.s.Lab, pki.CACert))
	if err != nil {
		return 0, "", "", fmt.Errorf("the lab CA: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	c, err := traffic.DialFrom(h, "tcp4", f.client.IP, f.port, dst, timeout)
	if err != nil {
		return 0, "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(traffic.Timeout))
	tc := tls.Client(c, &tls.Config{ServerName: serverName, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		return 0, "", "", fmt.Errorf("TLS with %s: %w", dst, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+serverName+path, nil)
	if err := req.Write(tc); err != nil {
		return 0, "", "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		return 0, "", "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(agent.PeerHeader), resp.Header.Get(agent.InstanceHeader), nil
}

func (f *cpFlow) expect(run *Run, cl *walk.Classifier, pkts []walk.Packet) (*walk.Expectation, error) {
	at := walk.Point{Object: f.client.Instance, Iface: f.client.ClientIface()}
	for _, p := range pkts {
		// By the destination, not the source port: aws-node's SNAT of a
		// node's own traffic out of the VPC picks a new port before eth0.
		if p.Point == at && p.Dir == walk.Out && p.Proto == "tcp" && p.TCP.SYN && !p.TCP.ACK && p.Src == f.client.IP &&
			p.DstPort == f.dport() && (p.SrcPort == f.port || f.target.Public) {
			cl.ISN, cl.HaveISN = p.TCP.Seq, true
			break
		}
	}
	return walk.DeriveControlPlane(f.s.Topo, f.w, f.port, f.target)
}

func (f *cpFlow) azs() map[string]string { return walk.ControlPlanePortAZs(f.s.Topo) }

func (f *cpFlow) judge(run *Run, e *walk.Expectation, cl *walk.Classifier, pkts []walk.Packet) {
	w, r := f.w, run.Report
	t := f.s.Topo
	if f.server.IsValid() {
		where := "the VPC resolver"
		if f.client.Internet {
			where = "Route 53"
		}
		want := t.EndpointAddrs(!f.client.Internet)
		r.Notes = append(r.Notes, fmt.Sprintf("%s answered %s with %v; the client uses %s", where, t.EndpointName(), f.answers, f.target.Addr))
		if fmt.Sprint(f.answers) != fmt.Sprint(want) {
			r.Notes = append(r.Notes, fmt.Sprintf("DNS: %v, but the topology says %v", f.answers, want))
			r.Failed = true
		}
	}
	switch {
	case w.Expect == "drop" && run.TrafficErr == nil:
		r.Notes = append(r.Notes, "traffic: answered, but this walk expects the flow to be dropped")
		r.Failed = true
	case w.Expect == "drop":
		r.Notes = append(r.Notes, "traffic: no answer, as expected ("+run.TrafficErr.Error()+")")
		return
	case run.TrafficErr != nil:
		r.Notes = append(r.Notes, "traffic: "+run.TrafficErr.Error())
		r.Failed = true
		return
	}
	r.Notes = append(r.Notes, fmt.Sprintf("TLS verified against the lab CA; HTTP %d from %s", f.status, f.answer))
	if f.status != http.StatusOK {
		r.Failed = true
	}
	// What the server saw: the source of the request's last hop.
	var want netip.Addr
	for _, h := range e.Hops {
		if h.Leg == walk.Request {
			want = h.Src
		}
	}
	seen, err := netip.ParseAddrPort(f.peer)
	r.Notes = append(r.Notes, fmt.Sprintf("%s saw the client as %s", f.answer, f.peer))
	if err != nil || seen.Addr() != want {
		r.Notes = append(r.Notes, fmt.Sprintf("the server should have seen %s", want))
		r.Failed = true
	}
}

// dport is the port the walk connects to.
func (f *cpFlow) dport() uint16 {
	if f.s.Topo.Node(f.w.To) != nil {
		return spec.KubeletPort
	}
	return spec.APIServerPort
}
