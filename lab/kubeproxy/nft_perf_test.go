package kubeproxy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"
)

// nftBenchServices are n ClusterIP Services with three endpoints each, as
// `labctl bench --services n` makes them.
func nftBenchServices(n int) []ServicePort {
	svcs := make([]ServicePort, n)
	for i := range svcs {
		s := &svcs[i]
		s.Namespace, s.Name, s.PortName, s.Protocol, s.Port = "bench", fmt.Sprintf("svc-%d", i), "http", "TCP", 80
		s.ClusterIP = netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)})
		for j := 0; j < 3; j++ {
			s.Endpoints = append(s.Endpoints, Endpoint{IP: netip.AddrFrom4([4]byte{10, 1 + byte(j), byte(i >> 8), byte(i)}),
				Port: 8080, Ready: true, Serving: true})
		}
	}
	return svcs
}

// BenchmarkNFTFullSync1000 renders the first (full) sync of 1,000 Services
// as `nft -f` text.
func BenchmarkNFTFullSync1000(b *testing.B) {
	svcs := nftBenchServices(1000)
	for b.Loop() {
		p, err := NewNFTProxier(nftGoldenConfig())
		if err != nil {
			b.Fatal(err)
		}
		r, err := p.Sync(svcs, time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		_ = r.Tx.String()
	}
}

// BenchmarkNFTPartialSync1000 renders a one-endpoint change among 1,000
// Services as `nft -f` text.
func BenchmarkNFTPartialSync1000(b *testing.B) {
	svcs := nftBenchServices(1000)
	p, err := NewNFTProxier(nftGoldenConfig())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Time{}
	r, err := p.Sync(svcs, now)
	if err != nil {
		b.Fatal(err)
	}
	p.Applied(r, nil, nil)
	k := 0
	for b.Loop() {
		svcs[(500+k*37)%1000].Endpoints[0].IP = netip.AddrFrom4([4]byte{10, 9, byte(k >> 8), byte(k)})
		k++
		now = now.Add(2 * time.Second)
		r, err := p.Sync(svcs, now)
		if err != nil {
			b.Fatal(err)
		}
		_ = r.Tx.String()
		p.Applied(r, nil, nil)
	}
}

// A sync's element changes reach the state only through nftApplyDelta: a
// replaced value replaces, a deletion deletes, untouched keys stay, and a
// reset (nil base) keeps only the delta's additions.
func TestNFTApplyDeltaReplacesDeletesAndKeeps(t *testing.T) {
	v := func(s string) *string { return &s }
	got := nftApplyDelta(map[string]string{"a": "1", "b": "2", "c": "3"},
		map[string]*string{"a": v("9"), "b": nil, "d": v("4")})
	if want := map[string]string{"a": "9", "c": "3", "d": "4"}; !maps.Equal(got, want) {
		t.Errorf("applied %v, want %v", got, want)
	}
	got = nftApplyDelta(nil, map[string]*string{"x": v("1"), "y": nil})
	if want := map[string]string{"x": "1"}; !maps.Equal(got, want) {
		t.Errorf("applied to nil %v, want %v", got, want)
	}
}

// Leftover elements are the applied keys no ensure touched, in key order
// (the transaction text must not depend on map order).
func TestNFTLeftoversAreUnseenKeysSorted(t *testing.T) {
	got := nftLeftovers(map[string]string{"c": "", "a": "", "b": "", "d": ""}, map[string]struct{}{"b": {}, "x": {}})
	if want := []string{"a", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("leftovers %v, want %v", got, want)
	}
}

// Only per-service and per-endpoint chains (names with '/') that no
// Service uses any more are flushed, sorted; fixed chains never are.
func TestNFTUnusedChainsAreServiceChainsNotActiveSorted(t *testing.T) {
	existing := map[string]struct{}{"services": {}, "service-X-ns/b/tcp/p": {}, "endpoint-Y-ns/a/tcp/p__1/80": {},
		"service-Z-ns/c/tcp/p": {}, "mark-for-masquerade": {}}
	active := map[string]struct{}{"service-Z-ns/c/tcp/p": {}}
	got := nftUnusedChains(existing, active)
	if want := []string{"endpoint-Y-ns/a/tcp/p__1/80", "service-X-ns/b/tcp/p"}; !slices.Equal(got, want) {
		t.Errorf("unused %v, want %v", got, want)
	}
}

// After a ForceFullSync the element containers were flushed and refilled:
// an element of a Service gone by then is not in the kernel any more, so
// the next partial sync must not try to delete it (the delete would fail
// the transaction).
func TestNFTForceFullSyncForgetsFlushedElements(t *testing.T) {
	p, err := NewNFTProxier(nftGoldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	fake := NewNFTFake(false)
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	a := nftClusterIPService("ns1", "a", "p80", 80, "172.30.0.41", ready("10.180.0.1", 80))
	b := nftClusterIPService("ns1", "b", "p80", 80, "172.30.0.42", ready("10.180.0.2", 80))
	r, err := p.Sync([]ServicePort{a, b}, now)
	if err != nil {
		t.Fatal(err)
	}
	nftApply(t, p, fake, r)
	p.ForceFullSync()
	r, err = p.Sync([]ServicePort{a}, now)
	if err != nil {
		t.Fatal(err)
	}
	nftApply(t, p, fake, r)
	r, err = p.Sync([]ServicePort{a}, now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.Tx.String(), "delete element") {
		t.Errorf("partial sync after a full reset deletes elements the reset flushed:\n%s", r.Tx)
	}
	nftApply(t, p, fake, r)
}

// Ensuring one element twice in a sync compares with what the first
// ensure wrote, not with the applied state: the same value again writes
// nothing, another value replaces it again.
func TestNFTElementStoreComparesWithThisSyncsWrites(t *testing.T) {
	st := newNFTElementStore("map", nftServiceIPsMap, map[string]string{"172.30.0.41 . tcp . 80": "goto a"})
	tx := newNFTTransaction(knftables.IPv4Family)
	elem := func(v string) *knftables.Element {
		return &knftables.Element{Map: nftServiceIPsMap, Key: []string{"172.30.0.41", "tcp", "80"}, Value: []string{v}}
	}
	st.ensure(tx, elem("goto b"))
	st.ensure(tx, elem("goto b"))
	st.ensure(tx, elem("goto a"))
	got := tx.String()
	want := "delete element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 }\n" +
		"add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto b }\n" +
		"delete element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 }\n" +
		"add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto a }\n"
	if got != want {
		t.Errorf("transaction:\n%s\nwant (b once, then a again):\n%s", got, want)
	}
}
