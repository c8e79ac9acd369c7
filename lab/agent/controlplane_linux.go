//go:build linux

package agent

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/labctl/labctl/lab/pki"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// Listener kinds of the EKS control plane.
const (
	kindAPIServer   listenerKind = "kube-apiserver" // an API server instance, HTTPS 443
	kindKubelet     listenerKind = "kubelet"        // a node's kubelet API, HTTPS 10250
	kindVPCResolver listenerKind = "vpc-resolver"   // the Amazon-provided DNS at the VPC base + 2
)

// PeerHeader names the address a control plane server saw the request
// come from, so a walk can show what the API server or kubelet sees.
const PeerHeader = "X-Labctl-Peer"

// InstanceHeader names the API server instance or node that answered.
const InstanceHeader = "X-Labctl-Instance"

// controlPlaneListeners are the control plane's sockets: each API server
// on 443 (its own address and its X-ENI), each node's kubelet on 10250,
// and the VPC resolver on the VPC router.
func controlPlaneListeners(t *spec.Topology) []listener {
	if t.ControlPlane == nil {
		return nil
	}
	var out []listener
	for i := 0; i < spec.APIServerCount; i++ {
		out = append(out, listener{Object: spec.APIServerName(i), Kind: kindAPIServer, Proto: "tcp", Port: spec.APIServerPort})
	}
	for _, n := range t.Nodes {
		out = append(out, listener{Object: n.Name, Kind: kindKubelet, Proto: "tcp", Port: spec.KubeletPort})
	}
	r := spec.VPCResolver(t.VPC.CIDR)
	out = append(out, listener{Object: spec.RouterName, Kind: kindVPCResolver, Proto: "udp", Port: 53, Addr: r},
		listener{Object: spec.RouterName, Kind: kindVPCResolver, Proto: "tcp", Port: 53, Addr: r})
	return out
}

// serveControlPlane serves a control plane listener already opened.
func (a *agent) serveControlPlane(t *spec.Topology, l listener, tl net.Listener, ul net.PacketConn) (io.Closer, error) {
	switch l.Kind {
	case kindVPCResolver:
		h := vpcResolverHandler(t)
		if l.Proto == "udp" {
			go (&dns.Server{PacketConn: ul, Handler: h}).ActivateAndServe() //nolint:errcheck
			return ul, nil
		}
		go (&dns.Server{Listener: tl, Handler: h}).ActivateAndServe() //nolint:errcheck
		return tl, nil
	case kindAPIServer, kindKubelet:
		certFile, keyFile := pki.APIServerCert, pki.APIServerKey
		h := a.apiServerHandler(l.Object)
		if l.Kind == kindKubelet {
			certFile, keyFile, h = pki.KubeletCert, pki.KubeletKey, kubeletHandler(l.Object)
		}
		cert, err := loadPair(a.lab, certFile, keyFile)
		if err != nil {
			tl.Close()
			return nil, err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
		go srv.ServeTLS(tl, "", "") //nolint:errcheck // ends when the listener closes
		return tl, nil
	}
	return nil, fmt.Errorf("not a control plane listener: %s", l)
}

func loadPair(lab, certFile, keyFile string) (tls.Certificate, error) {
	files := map[string][]byte{}
	for _, f := range []string{certFile, keyFile} {
		b, err := os.ReadFile(state.Path(lab, f))
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("the lab CA's files (made at up): %w", err)
		}
		files[f] = b
	}
	return pki.Pair(files, certFile, keyFile)
}

// vpcResolverHandler answers the cluster endpoint's name inside the VPC:
// the X-ENIs when private access is on (EKS's private hosted zone), else
// the NLB's public IPs. Other names are not resolved (NXDOMAIN): the lab's
// resolver forwards nowhere.
func vpcResolverHandler(t *spec.Topology) dns.Handler {
	endpoint := dns.Fqdn(strings.ToLower(t.EndpointName()))
	addrs := t.EndpointAddrs(true)
	return aHandler(60, func(name string) []netip.Addr {
		if name == endpoint {
			return addrs
		}
		return nil
	})
}

// apiServerHandler is what the lab's API server answers: /version,
// /healthz (and /livez, /readyz) and the default namespace's pods, as
// kube-apiserver's JSON. Every answer names the instance and the peer
// address it saw.
func (a *agent) apiServerHandler(instance string) http.Handler {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/livez", ok)
	mux.HandleFunc("/readyz", ok)
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, VersionInfo)
	})
	mux.HandleFunc("/api/v1/namespaces/{namespace}/pods", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		t := a.topo
		a.mu.Unlock()
		writeJSON(w, PodList(t, r.PathValue("namespace")))
	})
	return withPeer(instance, mux)
}

// kubeletHandler answers the kubelet API's /healthz; a walk from the API
// server reads the peer address it saw.
func kubeletHandler(node string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	return withPeer(node, mux)
}

func withPeer(instance string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(PeerHeader, r.RemoteAddr)
		w.Header().Set(InstanceHeader, instance)
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
