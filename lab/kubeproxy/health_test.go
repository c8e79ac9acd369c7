package kubeproxy

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestServiceHealthAnswersLikeKubeProxy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		local      int
		proxy      bool
		wantStatus int
	}{
		{"local endpoints, healthy proxy", 2, true, http.StatusOK},
		{"no local endpoints", 0, true, http.StatusServiceUnavailable},
		{"unhealthy proxy", 1, false, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ServiceHealthHandler{Namespace: "ns2", Name: "svc2",
				LocalEndpoints: func() int { return tc.local }, ProxyHealthy: func() bool { return tc.proxy }}
			// One handler answers every path.
			for _, path := range []string{"/", "/healthz", "/anything"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != tc.wantStatus {
					t.Errorf("%s: status %d, want %d", path, rec.Code, tc.wantStatus)
				}
				wantBody := "{\n\t\"service\": {\n\t\t\"namespace\": \"ns2\",\n\t\t\"name\": \"svc2\"\n\t},\n\t\"localEndpoints\": " +
					strconv.Itoa(tc.local) + ",\n\t\"serviceProxyHealthy\": " + strconv.FormatBool(tc.proxy) + "\n}"
				if diff := cmp.Diff(wantBody, rec.Body.String()); diff != "" {
					t.Errorf("%s: body (-want +got):\n%s", path, diff)
				}
				wantHeaders := map[string]string{"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
					"X-Load-Balancing-Endpoint-Weight": strconv.Itoa(tc.local)}
				for k, v := range wantHeaders {
					if got := rec.Header().Get(k); got != v {
						t.Errorf("%s: header %s = %q, want %q", path, k, got, v)
					}
				}
			}
		})
	}
}

func TestHealthCheckServicesOfOverallGolden(t *testing.T) {
	// svc2 is eTP=Local with hcnp 30000 and its endpoint is not local; svc5
	// has hcnp 30000 too but eTP=Cluster, so kube-proxy serves no check.
	want := []HealthCheckService{{Namespace: "ns2", Name: "svc2", NodePort: 30000, LocalEndpoints: 0}}
	if diff := cmp.Diff(want, HealthCheckServices(overallServices())); diff != "" {
		t.Errorf("HealthCheckServices (-want +got):\n%s", diff)
	}
}

func TestLocalReadyEndpointsCountsDistinctLocalReadyIPs(t *testing.T) {
	svcs := []ServicePort{
		{Namespace: "ns", Name: "web", PortName: "http", Endpoints: []Endpoint{readyLocal("10.0.0.1", 80), readyLocal("10.0.0.2", 80), ready("10.0.9.9", 80)}},
		// Same pod on another port counts once.
		{Namespace: "ns", Name: "web", PortName: "https", Endpoints: []Endpoint{readyLocal("10.0.0.1", 443)}},
		// Terminating local endpoints drain the node.
		{Namespace: "ns", Name: "db", Endpoints: []Endpoint{{IP: addr("10.0.0.3"), Port: 5432, Local: true, Serving: true, Terminating: true}}},
	}
	if diff := cmp.Diff(map[string]int{"ns/web": 2}, LocalReadyEndpoints(svcs)); diff != "" {
		t.Errorf("LocalReadyEndpoints (-want +got):\n%s", diff)
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestProxyHealthzAndLivezFollowQueuedUpdatesAndNodeEligibility(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ph := NewProxyHealth(DefaultHealthTimeout, clock.now)
	h := ph.Handler()
	now := clock.t.String()

	rec := get(t, h, "/healthz")
	wantBody := `{"lastUpdated": "` + now + `","currentTime": "` + now + `", "nodeEligible": true}`
	if rec.Code != http.StatusOK || rec.Body.String() != wantBody {
		t.Errorf("startup /healthz = %d %s, want 200 %s", rec.Code, rec.Body, wantBody)
	}
	if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers: %v", rec.Header())
	}

	// A queued update is fine until it is older than the timeout.
	ph.QueuedUpdate()
	clock.t = clock.t.Add(59 * time.Second)
	if rec := get(t, h, "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("update pending 59s: %d, want 200", rec.Code)
	}
	ph.QueuedUpdate() // does not reset the oldest pending time
	clock.t = clock.t.Add(time.Second)
	rec = get(t, h, "/healthz")
	if rec.Code != http.StatusServiceUnavailable || ph.IsHealthy() {
		t.Errorf("update pending 60s: %d healthy=%v, want 503", rec.Code, ph.IsHealthy())
	}
	// Unhealthy answers report the real last update (never, here).
	if want := `{"lastUpdated": "` + (time.Time{}).String() + `","currentTime": "` + clock.t.String() + `", "nodeEligible": true}`; rec.Body.String() != want {
		t.Errorf("unhealthy body %s, want %s", rec.Body, want)
	}
	if rec := get(t, h, "/livez"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/livez while unhealthy: %d", rec.Code)
	}

	ph.Updated()
	if rec := get(t, h, "/healthz"); rec.Code != http.StatusOK {
		t.Errorf("after Updated: %d, want 200", rec.Code)
	}

	// A node being deleted fails /healthz (LBs drain it) but not /livez.
	ph.SetNodeEligible(false)
	rec = get(t, h, "/healthz")
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != `{"lastUpdated": "`+clock.t.String()+`","currentTime": "`+clock.t.String()+`", "nodeEligible": false}` {
		t.Errorf("ineligible /healthz = %d %s", rec.Code, rec.Body)
	}
	rec = get(t, h, "/livez")
	if rec.Code != http.StatusOK || rec.Body.String() != `{"lastUpdated": "`+clock.t.String()+`","currentTime": "`+clock.t.String()+`"}` {
		t.Errorf("ineligible /livez = %d %s", rec.Code, rec.Body)
	}
	if !ph.IsHealthy() {
		t.Errorf("node eligibility must not affect IsHealthy")
	}
}
