//go:build linux

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
)

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

// ServeApps is the lab's app server: it opens an HTTP listener on
// spec.AppTCPPort and a UDP echo on spec.AppUDPPort inside every pod and host
// namespace (a socket keeps the namespace it was created in, so one process
// serves them all), then reports ready on the file ready and serves until
// ctx ends.
func ServeApps(ctx context.Context, lab string, ready *os.File) error {
	t, _, err := Load(lab)
	if err != nil {
		return err
	}
	type app struct {
		obj, k8sns, node string
	}
	var apps []app
	for _, p := range t.Pods {
		apps = append(apps, app{p.Name, p.Namespace, p.Node})
	}
	for _, h := range t.Hosts {
		apps = append(apps, app{obj: h.Name})
	}
	for _, a := range apps {
		n, err := ns.Open(spec.NSName(lab, a.obj))
		if err != nil {
			return err
		}
		var tl net.Listener
		var ul net.PacketConn
		err = n.Do(func() error {
			var err error
			if tl, err = net.Listen("tcp4", ":"+strconv.Itoa(spec.AppTCPPort)); err != nil {
				return err
			}
			ul, err = net.ListenPacket("udp4", ":"+strconv.Itoa(spec.AppUDPPort))
			return err
		})
		n.Close()
		if err != nil {
			return fmt.Errorf("app in %s: %w", a.obj, err)
		}
		base := AppAnswer{Object: a.obj, Namespace: a.k8sns, Node: a.node}
		srv := &http.Server{Handler: appHandler(base), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(tl) //nolint:errcheck // ends with the process
		go serveUDP(ul, base)
	}
	if ready != nil {
		fmt.Fprintln(ready, "ready")
		ready.Close()
	}
	<-ctx.Done()
	return nil
}

func appHandler(base AppAnswer) http.Handler {
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

func serveUDP(c net.PacketConn, base AppAnswer) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		a := base
		a.Local = c.LocalAddr().String()
		a.Remote = from.String()
		a.Echo = string(buf[:n])
		b, _ := json.Marshal(a)
		_, _ = c.WriteTo(b, from)
	}
}
