package kubeproxy

import (
	"net/netip"
	"strconv"
	"testing"
)

// benchServices builds n ClusterIP+NodePort services with m ready endpoints
// each, one of them local.
func benchServices(n, m int) []ServicePort {
	svcs := make([]ServicePort, n)
	for i := range svcs {
		sp := ServicePort{
			Namespace: "bench", Name: "svc" + strconv.Itoa(i), PortName: "http", Protocol: "TCP",
			ClusterIP: netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)}), Port: 80,
			NodePort: int32(30000 + i%2000),
		}
		for j := range m {
			sp.Endpoints = append(sp.Endpoints, Endpoint{
				IP: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}), Port: 8080,
				Ready: true, Serving: true, Local: j == 0,
			})
		}
		svcs[i] = sp
	}
	return svcs
}

func BenchmarkRender1000Services3Endpoints(b *testing.B) {
	cfg := goldenConfig()
	svcs := benchServices(1000, 3)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		out, err := Render(cfg, svcs)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bytes/payload")
}

func BenchmarkPartialSync1000ServicesOneChanged(b *testing.B) {
	p, err := NewProxier(goldenConfig())
	if err != nil {
		b.Fatal(err)
	}
	svcs := benchServices(1000, 3)
	r, _ := p.Sync(svcs)
	p.Applied(r, nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		svcs[i%len(svcs)].Endpoints[1].Ready = !svcs[i%len(svcs)].Endpoints[1].Ready
		r, err := p.Sync(svcs)
		if err != nil {
			b.Fatal(err)
		}
		p.Applied(r, nil)
	}
}
