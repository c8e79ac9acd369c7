//go:build linux

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/lab/traffic"
)

// coreDNS is the Deployment whose pods serve cluster DNS.
const coreDNS = "Deployment kube-system/coredns"

// listenerKind is what a listener serves.
type listenerKind string

const (
	kindHTTP         listenerKind = "http"          // a pod's or host's app over TCP
	kindEcho         listenerKind = "echo"          // its UDP echo
	kindDNS          listenerKind = "dns"           // CoreDNS
	kindHealthz      listenerKind = "healthz"       // kube-proxy's /healthz
	kindServiceCheck listenerKind = "service-check" // kube-proxy's health check port of a Local Service
	kindALB          listenerKind = "alb"           // one node of an ALB
	kindRoute53      listenerKind = "route53"       // the internet's authoritative DNS
)

// listener is one socket the app server holds in a lab namespace. It is a
// map key: every field is comparable.
type listener struct {
	Object string
	Kind   listenerKind
	Proto  string // tcp or udp
	Port   int
	Addr   netip.Addr // bound address; unset means any
	// Service is the namespace/name of a service-check listener.
	Service string
	// ALBNode is the index of an alb listener's node in its load balancer.
	ALBNode int
}

func (l listener) String() string {
	what := string(l.Kind)
	switch l.Kind {
	case kindServiceCheck:
		what += " " + l.Service
	case kindALB:
		what += fmt.Sprintf(" node %d", l.ALBNode)
	}
	return fmt.Sprintf("%s %s %s/%d", l.Object, what, l.Proto, l.Port)
}

// agent is the lab's app server. One process holds sockets in every pod,
// host and node namespace (a socket keeps the namespace it was created in).
type agent struct {
	lab       string
	reloading sync.Mutex
	mu        sync.Mutex
	open      map[listener]io.Closer
	topo      *spec.Topology
	lbs       *lbRuntime
	// albConns are the ALB's connections for the last walk requests, by
	// token, oldest first in albOrder.
	albConns map[string]*albConn
	albOrder []string
	// keepAlive is each app's keep-alive timeout, by object, where one is
	// set (SetKeepAlive): shorter than the ALB's idle timeout, it makes
	// the ALB's kept connections die under its requests.
	keepAlive map[string]time.Duration
}

// keepAliveOf is an app's keep-alive timeout (0: none).
func (a *agent) keepAliveOf(object string) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.keepAlive[object]
}

// lbFor returns the running load balancers and the named one.
func (a *agent) lbFor(name string) (*lbRuntime, *lb.LoadBalancer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lbs == nil {
		return nil, nil
	}
	for _, l := range a.lbs.model.LBs {
		if l.Name == name {
			return a.lbs, l
		}
	}
	return nil, nil
}

// ServeApps runs the app server of a lab: it opens every listener, reports
// ready on the file ready, then serves and takes "reload" commands on its
// control socket until ctx ends.
func ServeApps(ctx context.Context, lab string, ready *os.File) error {
	a := &agent{lab: lab, open: map[listener]io.Closer{}}
	if err := a.reconcile(); err != nil {
		return err
	}
	_ = os.Remove(state.AgentSocket(lab))
	ctl, err := net.Listen("unix", state.AgentSocket(lab))
	if err != nil {
		return err
	}
	// Whatever the caller's umask: only root may command the app server.
	if err := os.Chmod(state.AgentSocket(lab), 0o600); err != nil {
		ctl.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		ctl.Close()
	}()
	if ready != nil {
		fmt.Fprintln(ready, "ready")
		ready.Close()
	}
	for {
		c, err := ctl.Accept()
		if err != nil {
			return nil
		}
		go a.command(c)
	}
}

func (a *agent) command(c net.Conn) {
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	if token, ok := strings.CutPrefix(strings.TrimSpace(line), "albconn "); ok {
		fmt.Fprintln(c, a.albConnOf(token))
		return
	}
	if obj, ok := strings.CutPrefix(strings.TrimSpace(line), "keepalive-of "); ok {
		fmt.Fprintln(c, a.keepAliveOf(obj).Milliseconds())
		return
	}
	if args, ok := strings.CutPrefix(strings.TrimSpace(line), "keepalive "); ok {
		obj, ms, _ := strings.Cut(args, " ")
		n, err := strconv.Atoi(ms)
		if obj == "" || err != nil || n < 0 {
			fmt.Fprintf(c, "error: keepalive %q: want an object and milliseconds\n", args)
			return
		}
		a.mu.Lock()
		if a.keepAlive == nil {
			a.keepAlive = map[string]time.Duration{}
		}
		a.keepAlive[obj] = time.Duration(n) * time.Millisecond
		if n == 0 {
			delete(a.keepAlive, obj)
		}
		a.mu.Unlock()
		fmt.Fprintln(c, "ok")
		return
	}
	switch strings.TrimSpace(line) {
	case "reload":
		// One reload at a time: two would each stop the same old load
		// balancers and start their own, and one would run on unowned.
		a.reloading.Lock()
		err := a.reconcile()
		a.reloading.Unlock()
		if err != nil {
			fmt.Fprintln(c, "error:", err)
			return
		}
		fmt.Fprintln(c, "ok")
	default:
		fmt.Fprintln(c, "error: unknown command")
	}
}

// want is every listener the lab's topology calls for.
func want(t *spec.Topology) []listener {
	var out []listener
	for _, p := range t.Pods {
		if p.Manifest == coreDNS {
			for _, cp := range p.Ports {
				out = append(out, listener{Object: p.Name, Kind: kindDNS, Proto: strings.ToLower(cp.Protocol), Port: cp.Port})
			}
			continue
		}
		tcp, udp := map[int]bool{spec.AppTCPPort: true}, map[int]bool{spec.AppUDPPort: true}
		for _, cp := range p.Ports {
			if cp.Protocol == "UDP" {
				udp[cp.Port] = true
			} else {
				tcp[cp.Port] = true
			}
		}
		for port := range tcp {
			out = append(out, listener{Object: p.Name, Kind: kindHTTP, Proto: "tcp", Port: port})
		}
		for port := range udp {
			out = append(out, listener{Object: p.Name, Kind: kindEcho, Proto: "udp", Port: port})
		}
	}
	hosts := []string{}
	for _, h := range t.Hosts {
		hosts = append(hosts, h.Name)
	}
	if t.Internet != nil {
		for _, h := range t.Internet.Hosts {
			hosts = append(hosts, h.Name)
		}
	}
	for _, h := range hosts {
		out = append(out, listener{Object: h, Kind: kindHTTP, Proto: "tcp", Port: spec.AppTCPPort}, listener{Object: h, Kind: kindEcho, Proto: "udp", Port: spec.AppUDPPort})
	}
	sps := cluster.Endpoints(t)
	for _, n := range t.Nodes {
		out = append(out, listener{Object: n.Name, Kind: kindHealthz, Proto: "tcp", Port: kubeproxy.ProxyHealthzPort})
		for _, hc := range kubeproxy.HealthCheckServices(cluster.ProxyServices(sps, n.Name)) {
			out = append(out, listener{Object: n.Name, Kind: kindServiceCheck, Service: hc.Namespace + "/" + hc.Name, Proto: "tcp", Port: int(hc.NodePort)})
		}
	}
	if m, err := lb.Build(t); err == nil {
		for _, l := range m.LBs {
			if l.Kind != lb.ALB {
				continue
			}
			for _, n := range l.Nodes {
				out = append(out, listener{Object: l.Name, Kind: kindALB, ALBNode: n.Index, Proto: "tcp", Port: 80, Addr: n.IP})
			}
		}
	}
	if t.Internet != nil && t.Internet.DNS != nil {
		d := t.Internet.DNS.Name
		out = append(out, listener{Object: d, Kind: kindRoute53, Proto: "udp", Port: 53},
			listener{Object: d, Kind: kindRoute53, Proto: "tcp", Port: 53})
	}
	out = append(out, controlPlaneListeners(t)...)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// reconcile reloads the lab and opens and closes listeners until the app
// server serves exactly what the topology (with its churn) calls for.
func (a *agent) reconcile() error {
	t, _, err := state.Load(a.lab)
	if err != nil {
		return err
	}
	if err := a.listenAll(t); err != nil {
		return err
	}
	// The old health checks end first, so a late rule update of theirs can
	// never land after the new ones. Health checks start once every app
	// listens, so a lab comes up with its load balancers' view of health
	// formed by real answers.
	a.mu.Lock()
	old := a.lbs
	a.mu.Unlock()
	var seed map[string]TargetHealth
	if old != nil {
		old.stop()
		seed = old.recorded()
	}
	lbs, err := startLBs(a.lab, t, seed)
	if err != nil {
		return err
	}
	lbs.settle(settleLimit)
	a.mu.Lock()
	a.lbs = lbs
	a.mu.Unlock()
	return nil
}

// listenAll opens and closes listeners until the app server serves exactly
// what the topology calls for.
func (a *agent) listenAll(t *spec.Topology) error {
	var err error
	a.mu.Lock()
	defer a.mu.Unlock()
	a.topo = t
	wanted := map[listener]bool{}
	for _, l := range want(t) {
		wanted[l] = true
	}
	for l, c := range a.open {
		if !wanted[l] {
			c.Close()
			delete(a.open, l)
		}
	}
	handles := map[string]*ns.NS{}
	defer func() {
		for _, h := range handles {
			h.Close()
		}
	}()
	for _, l := range want(t) {
		if a.open[l] != nil {
			continue
		}
		h := handles[l.Object]
		if h == nil {
			if h, err = ns.Open(spec.NSName(a.lab, l.Object)); err != nil {
				return err
			}
			handles[l.Object] = h
		}
		c, err := a.listen(h, t, l)
		if err != nil {
			return fmt.Errorf("%s: %w", l, err)
		}
		a.open[l] = c
	}
	return nil
}

func (a *agent) listen(h *ns.NS, t *spec.Topology, l listener) (io.Closer, error) {
	var tl net.Listener
	var ul net.PacketConn
	err := h.Do(func() error {
		var err error
		host := ""
		if l.Addr.IsValid() {
			host = l.Addr.String()
		}
		if l.Proto == "udp" {
			ul, err = net.ListenPacket("udp4", net.JoinHostPort(host, strconv.Itoa(l.Port)))
		} else {
			tl, err = net.Listen("tcp4", net.JoinHostPort(host, strconv.Itoa(l.Port)))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	base := traffic.AppAnswer{Object: l.Object}
	if p := t.Pod(l.Object); p != nil {
		base.Namespace, base.Node = p.Namespace, p.Node
	}
	switch {
	case l.Kind == kindAPIServer || l.Kind == kindKubelet || l.Kind == kindVPCResolver:
		return a.serveControlPlane(t, l, tl, ul)
	case l.Kind == kindEcho:
		go serveUDP(ul, base)
		return ul, nil
	case l.Kind == kindRoute53 && l.Proto == "udp":
		srv := &dns.Server{PacketConn: ul, Handler: a.route53Handler(t)}
		go srv.ActivateAndServe() //nolint:errcheck
		return ul, nil
	case l.Kind == kindRoute53:
		srv := &dns.Server{Listener: tl, Handler: a.route53Handler(t)}
		go srv.ActivateAndServe() //nolint:errcheck
		return tl, nil
	case l.Kind == kindDNS && l.Proto == "udp":
		srv := &dns.Server{PacketConn: ul, Handler: a.dnsHandler()}
		go srv.ActivateAndServe() //nolint:errcheck // ends when the socket closes
		return ul, nil
	case l.Kind == kindDNS:
		srv := &dns.Server{Listener: tl, Handler: a.dnsHandler()}
		go srv.ActivateAndServe() //nolint:errcheck
		return tl, nil
	case l.Kind == kindHealthz:
		ph := kubeproxy.NewProxyHealth(kubeproxy.DefaultHealthTimeout, nil)
		ph.Updated()
		go serveHTTP(tl, ph.Handler())
		return tl, nil
	case l.Kind == kindALB:
		m, err := lb.Build(t)
		if err != nil {
			tl.Close()
			return nil, err
		}
		// The proxy dials targets from this namespace for as long as the
		// listener lives, so it holds a handle of its own.
		own, err := ns.Open(h.Name)
		if err != nil {
			tl.Close()
			return nil, err
		}
		for _, lbi := range m.LBs {
			if lbi.Name == l.Object {
				go serveHTTP(tl, a.albHandler(own, l.Object, lbi.Nodes[l.ALBNode]))
			}
		}
		return closers{tl, closerFunc(func() error { own.Close(); return nil })}, nil
	case l.Kind == kindServiceCheck:
		nsName, name, _ := strings.Cut(l.Service, "/")
		node := l.Object
		go serveHTTP(tl, &kubeproxy.ServiceHealthHandler{Namespace: nsName, Name: name,
			LocalEndpoints: func() int { return a.localEndpoints(node, nsName+"/"+name) }})
		return tl, nil
	}
	k := &keepAliveCloser{limit: func() time.Duration { return a.keepAliveOf(l.Object) }}
	srv := &http.Server{Handler: appHandler(base), ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		ConnState: k.connState}
	go srv.Serve(tl) //nolint:errcheck // ends when the listener closes
	return tl, nil
}

// localEndpoints is kube-proxy's count of a Service's ready pods on a node,
// from the topology as last reloaded.
func (a *agent) localEndpoints(node, svc string) int {
	a.mu.Lock()
	t := a.topo
	a.mu.Unlock()
	return kubeproxy.LocalReadyEndpoints(cluster.ProxyServices(cluster.Endpoints(t), node))[svc]
}

// dnsHandler answers A queries for Services as CoreDNS's kubernetes plugin
// does (TTL 5), and NXDOMAIN for the rest of cluster.local.
func (a *agent) dnsHandler() dns.Handler {
	return aHandler(5, func(name string) []netip.Addr {
		a.mu.Lock()
		defer a.mu.Unlock()
		if ip, ok := cluster.DNSRecords(a.topo)[name]; ok {
			return []netip.Addr{ip}
		}
		return nil
	})
}

// aHandler is an authoritative server of A records: lookup returns a
// lower-case FQDN's addresses, none for NXDOMAIN.
func aHandler(ttl uint32, lookup func(fqdn string) []netip.Addr) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		for _, q := range r.Question {
			ips := lookup(strings.ToLower(q.Name))
			if len(ips) == 0 {
				m.Rcode = dns.RcodeNameError
				continue
			}
			if q.Qtype == dns.TypeA {
				for _, ip := range ips {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET,
						Ttl: ttl}, A: ip.AsSlice()})
				}
			}
		}
		_ = w.WriteMsg(m)
	})
}

func serveHTTP(l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	_ = srv.Serve(l)
}

func appHandler(base traffic.AppAnswer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := base
		a.Remote = r.RemoteAddr
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			a.Local = la.String()
		}
		a.Headers = r.Header
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	})
}

// serveUDP echoes each datagram with what the app saw. It reads each
// datagram's destination address (IP_PKTINFO), which is the address the
// packet arrived for after any NAT, and answers from it.
func serveUDP(c net.PacketConn, base traffic.AppAnswer) {
	pc := ipv4.NewPacketConn(c)
	_ = pc.SetControlMessage(ipv4.FlagDst, true)
	port := c.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 2048)
	for {
		n, cm, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		a := base
		a.Local = c.LocalAddr().String()
		var reply *ipv4.ControlMessage
		if cm != nil && cm.Dst != nil {
			a.Local = net.JoinHostPort(cm.Dst.String(), strconv.Itoa(port))
			reply = &ipv4.ControlMessage{Src: cm.Dst}
		}
		a.Remote = from.String()
		a.Echo = string(buf[:n])
		b, _ := json.Marshal(a)
		_, _ = pc.WriteTo(b, reply, from)
	}
}

// closers closes several things as one.
type closers []io.Closer

func (cs closers) Close() error {
	for _, c := range cs {
		c.Close()
	}
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// route53Handler answers the internet's alias A records: the public IP of
// every load balancer node in DNS, TTL 60, as Route 53 answers an ELB
// alias, in hosted zones with the SOA and NS records Route 53 creates
// (zoneHandler). Which nodes are in DNS follows the health the running load
// balancers last published (lbRuntime.inDNS), looked up at query time, so a
// reload's new targets count at once.
func (a *agent) route53Handler(t *spec.Topology) dns.Handler {
	type alias struct {
		lb    string
		nodes []lb.Node // before the load balancers run
	}
	records := map[string]alias{}
	if m, err := lb.Build(t); err == nil {
		for _, r := range t.Internet.DNS.Records {
			if l, err := lb.AliasTarget(m, r); err == nil {
				records[dns.Fqdn(strings.ToLower(r.Name))] = alias{l.Name, l.Nodes}
			}
		}
	}
	var zones, names []string
	for name := range records {
		names = append(names, name)
		if z := hostedZoneOf(name); !slices.Contains(zones, z) {
			zones = append(zones, z)
		}
	}
	// The cluster endpoint's public record (EKS's own zone).
	endpoint, public := "", []netip.Addr(nil)
	if t.ControlPlane != nil {
		endpoint, public = dns.Fqdn(strings.ToLower(t.EndpointName())), t.EndpointAddrs(false)
		names = append(names, endpoint)
		zones = append(zones, hostedZoneOf(endpoint))
	}
	return zoneHandler(zones, names, 60, func(name string) []netip.Addr {
		if name == endpoint {
			return public
		}
		al, ok := records[name]
		if !ok {
			return nil
		}
		nodes := al.nodes
		if r, l := a.lbFor(al.lb); r != nil {
			nodes = r.inDNS(l)
		}
		var ips []netip.Addr
		for _, n := range nodes {
			ips = append(ips, n.Public)
		}
		return ips
	})
}
