package cluster

import (
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// A terminating pod's endpoint is not ready but still serving (the
// EndpointSlice conditions of a pod being deleted): kube-proxy sends it no
// new connections while another endpoint is ready, and keeps its old ones.
// A starting pod is neither, and kube-proxy does not see it.
func TestTerminatingEndpointsServeButAreNotReadyAndStartingOnesAreSkipped(t *testing.T) {
	top := load(t, "clusterip")
	var web *ServicePort
	sps := Endpoints(top)
	for i := range sps {
		if sps[i].Service.Name == "web" {
			web = &sps[i]
		}
	}
	if web == nil || len(web.Endpoints) < 2 {
		t.Fatalf("web endpoints: %+v", web)
	}
	gone, starting := web.Endpoints[0], web.Endpoints[1]
	for i := range top.Pods {
		switch top.Pods[i].Name {
		case gone.Pod:
			top.Pods[i].Phase = spec.PodTerminating
		case starting.Pod:
			top.Pods[i].Phase = spec.PodStarting
		}
	}
	for _, sp := range ProxyServices(Endpoints(top), gone.Node) {
		if sp.Name != "web" {
			continue
		}
		found := false
		for _, e := range sp.Endpoints {
			switch e.IP {
			case gone.IP:
				found = true
				if e.Ready || !e.Serving || !e.Terminating {
					t.Errorf("terminating %s: ready %v serving %v terminating %v, want false true true", gone.Pod, e.Ready, e.Serving, e.Terminating)
				}
			case starting.IP:
				t.Errorf("starting %s is an endpoint kube-proxy sees", starting.Pod)
			default:
				if !e.Ready || !e.Serving || e.Terminating {
					t.Errorf("running endpoint %s: ready %v serving %v terminating %v", e.IP, e.Ready, e.Serving, e.Terminating)
				}
			}
		}
		if !found {
			t.Errorf("terminating %s dropped from kube-proxy's view; it still serves its connections", gone.Pod)
		}
	}
}
