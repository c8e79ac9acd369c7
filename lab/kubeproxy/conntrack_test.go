package kubeproxy

import (
	"net/netip"
	"slices"
	"testing"
)

func TestStaleUDPFlowsAreThoseNotAnsweredByAServingEndpoint(t *testing.T) {
	ip := netip.MustParseAddr
	dns := ServicePort{Namespace: "kube-system", Name: "kube-dns", PortName: "dns", Protocol: "UDP",
		ClusterIP: ip("10.100.0.10"), Port: 53, NodePort: 30053,
		Endpoints: []Endpoint{
			{IP: ip("192.168.1.20"), Port: 53, Ready: true, Serving: true},
			{IP: ip("192.168.1.21"), Port: 53, Serving: true, Terminating: true}, // still serving: kept
			{IP: ip("192.168.1.22"), Port: 53},                                   // neither: stale
		}}
	tcp := ServicePort{Namespace: "default", Name: "web", Protocol: "TCP", ClusterIP: ip("10.100.0.20"), Port: 53,
		Endpoints: []Endpoint{{IP: ip("192.168.1.30"), Port: 53, Ready: true, Serving: true}}}
	empty := ServicePort{Namespace: "default", Name: "gone", Protocol: "UDP", ClusterIP: ip("10.100.0.30"), Port: 53}
	flows := []UDPFlow{
		{netip.MustParseAddrPort("10.100.0.10:53"), ip("192.168.1.20")},     // live endpoint
		{netip.MustParseAddrPort("10.100.0.10:53"), ip("192.168.1.21")},     // terminating but serving
		{netip.MustParseAddrPort("10.100.0.10:53"), ip("192.168.1.99")},     // deleted pod: stale
		{netip.MustParseAddrPort("10.100.0.10:53"), ip("192.168.1.22")},     // not serving: stale
		{netip.MustParseAddrPort("192.168.1.50:30053"), ip("192.168.1.99")}, // NodePort, any address: stale
		{netip.MustParseAddrPort("10.100.0.20:53"), ip("192.168.1.99")},     // a TCP Service's IP: not ours
		{netip.MustParseAddrPort("10.100.0.30:53"), ip("192.168.1.99")},     // no endpoints: left alone
		{netip.MustParseAddrPort("10.100.0.10:5353"), ip("192.168.1.99")},   // another port
	}
	got := StaleUDPFlows([]ServicePort{dns, tcp, empty}, flows)
	want := []UDPFlow{flows[2], flows[3], flows[4]}
	if !slices.Equal(got, want) {
		t.Fatalf("stale flows\n got %v\nwant %v", got, want)
	}
}
