package kubeproxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProxyHealthzPort is kube-proxy's default healthz port (0.0.0.0:10256).
const ProxyHealthzPort = 10256

// DefaultHealthTimeout is kube-proxy's healthTimeout: 2 x syncPeriod (30s).
const DefaultHealthTimeout = 60 * time.Second

// ServiceHealthBody is the JSON body kube-proxy answers on a Service's
// healthCheckNodePort: tab-indented, no trailing newline (it is produced by
// dedenting a Go template upstream).
func ServiceHealthBody(namespace, name string, localEndpoints int, proxyHealthy bool) string {
	return fmt.Sprintf("{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}",
		namespace, name, localEndpoints, proxyHealthy)
}

// ServiceHealthHandler answers a Service's healthCheckNodePort, on every
// path, as kube-proxy does: 200 when this node has ready local endpoints
// and the proxy is healthy, else 503, so an eTP=Local load balancer only
// sends traffic to nodes that can serve it without a second hop.
type ServiceHealthHandler struct {
	Namespace, Name string
	// LocalEndpoints returns the number of this node's ready endpoints of
	// the Service (see LocalReadyEndpoints). Called once per request.
	LocalEndpoints func() int
	// ProxyHealthy reports the proxy-wide health; nil means healthy.
	ProxyHealthy func() bool
}

// ServeHTTP implements http.Handler.
func (h ServiceHealthHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	count := 0
	if h.LocalEndpoints != nil {
		count = h.LocalEndpoints()
	}
	healthy := h.ProxyHealthy == nil || h.ProxyHealthy()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Recent kube-proxy (the version with the per-family ProxyHealth API)
	// also reports the count as an LB weight hint.
	w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(count))
	if count != 0 && healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, ServiceHealthBody(h.Namespace, h.Name, count, healthy))
}

// HealthCheckService is one health check server kube-proxy would run.
type HealthCheckService struct {
	Namespace, Name string
	NodePort        int32
	// LocalEndpoints is LocalReadyEndpoints for the Service.
	LocalEndpoints int
}

// HealthCheckServices lists, sorted by namespace/name, the Services that get
// a health check server (eTP=Local with a healthCheckNodePort) with their
// local ready endpoint counts: what kube-proxy passes to SyncServices and
// SyncEndpoints after a sync.
func HealthCheckServices(services []ServicePort) []HealthCheckService {
	byName := map[string]*HealthCheckService{}
	for i := range services {
		sp := &services[i]
		if sp.HealthCheckNodePort == 0 || !sp.ExternalPolicyLocal || !sp.externallyAccessible() {
			continue
		}
		key := sp.Namespace + "/" + sp.Name
		if byName[key] == nil {
			byName[key] = &HealthCheckService{Namespace: sp.Namespace, Name: sp.Name, NodePort: sp.HealthCheckNodePort}
		}
	}
	counts := LocalReadyEndpoints(services)
	out := make([]HealthCheckService, 0, len(byName))
	for key, hc := range byName {
		hc.LocalEndpoints = counts[key]
		out = append(out, *hc)
	}
	slices.SortFunc(out, func(a, b HealthCheckService) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// LocalReadyEndpoints maps "namespace/name" to the number of distinct IPs of
// this node's ready endpoints across all ports of the Service, as
// EndpointsMap.LocalReadyEndpoints counts them (10.0.0.1:80 and 10.0.0.1:443
// are one endpoint). Terminating endpoints do not count, so load balancers
// drain the node.
func LocalReadyEndpoints(services []ServicePort) map[string]int {
	ips := map[string]map[netip.Addr]struct{}{}
	for i := range services {
		sp := &services[i]
		key := sp.Namespace + "/" + sp.Name
		for _, ep := range sp.Endpoints {
			if !ep.Local || !ep.Ready {
				continue
			}
			if ips[key] == nil {
				ips[key] = map[netip.Addr]struct{}{}
			}
			ips[key][ep.IP.Unmap()] = struct{}{}
		}
	}
	out := make(map[string]int, len(ips))
	for k, v := range ips {
		out[k] = len(v)
	}
	return out
}

// ProxyHealth is kube-proxy's proxy health state (proxierHealthServer) for
// one IP family: healthy unless an update has been queued for longer than
// the timeout without a successful sync. It is safe for concurrent use.
type ProxyHealth struct {
	timeout time.Duration
	now     func() time.Time

	mu             sync.Mutex
	lastUpdated    time.Time
	oldestPending  time.Time
	nodeIneligible bool
}

// NewProxyHealth returns a healthy ProxyHealth. now is the clock (nil means
// time.Now); timeout is normally DefaultHealthTimeout.
func NewProxyHealth(timeout time.Duration, now func() time.Time) *ProxyHealth {
	if now == nil {
		now = time.Now
	}
	return &ProxyHealth{timeout: timeout, now: now}
}

// QueuedUpdate records that a change is waiting to be synced; only the
// oldest pending one matters.
func (h *ProxyHealth) QueuedUpdate() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.oldestPending.IsZero() {
		h.oldestPending = h.now()
	}
}

// Updated records a successful sync.
func (h *ProxyHealth) Updated() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.oldestPending = time.Time{}
	h.lastUpdated = h.now()
}

// SetNodeEligible records whether the Node may receive LB traffic; it is
// false once the Node is being deleted or carries the
// ToBeDeletedByClusterAutoscaler taint.
func (h *ProxyHealth) SetNodeEligible(eligible bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodeIneligible = !eligible
}

// IsHealthy is the proxy health, ignoring node eligibility (what the
// per-Service health checks use).
func (h *ProxyHealth) IsHealthy() bool {
	healthy, _, _ := h.state()
	return healthy
}

func (h *ProxyHealth) state() (healthy bool, lastUpdated, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now = h.now()
	healthy = h.oldestPending.IsZero() || now.Sub(h.oldestPending) < h.timeout
	return healthy, h.lastUpdated, now
}

// Handler serves kube-proxy's /healthz (health and node eligibility, for
// load balancers) and /livez (health only, for the liveness probe).
func (h *ProxyHealth) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { h.serve(w, true) })
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { h.serve(w, false) })
	return mux
}

func (h *ProxyHealth) serve(w http.ResponseWriter, healthz bool) {
	healthy, lastUpdated, now := h.state()
	h.mu.Lock()
	eligible := !h.nodeIneligible
	h.mu.Unlock()
	if healthz {
		healthy = healthy && eligible
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	} else {
		w.WriteHeader(http.StatusOK)
		// Older releases reported the last sync-loop run; a healthy proxy
		// reports "now" to stay compatible.
		lastUpdated = now
	}
	if healthz {
		fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q, "nodeEligible": %v}`, lastUpdated, now, eligible)
	} else {
		fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q}`, lastUpdated, now)
	}
}
