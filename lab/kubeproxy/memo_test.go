package kubeproxy

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// randomCluster is a set of Services a test mutates step by step, in place,
// as a caller that reuses its slices would.
type randomCluster struct {
	rng  *rand.Rand
	svcs []ServicePort
	next int
}

func (c *randomCluster) newService() ServicePort {
	c.next++
	i := c.next
	sp := ServicePort{Namespace: "ns" + strconv.Itoa(i%3), Name: "svc" + strconv.Itoa(i), PortName: "http", Protocol: "TCP",
		ClusterIP: netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)}), Port: 80}
	for j := range c.rng.IntN(40) {
		sp.Endpoints = append(sp.Endpoints, c.endpoint(i, j))
	}
	return sp
}

func (c *randomCluster) endpoint(i, j int) Endpoint {
	return Endpoint{IP: netip.AddrFrom4([4]byte{10, byte(j), byte(i >> 8), byte(i)}), Port: 8080,
		Ready: c.rng.IntN(5) > 0, Serving: true, Local: c.rng.IntN(3) == 0}
}

// mutate makes one change of the kinds kube-proxy sees: endpoints coming,
// going and changing readiness, Services coming and going, a second port,
// a NodePort, a traffic policy, affinity.
func (c *randomCluster) mutate() {
	if len(c.svcs) == 0 {
		c.svcs = append(c.svcs, c.newService())
		return
	}
	k := c.rng.IntN(len(c.svcs))
	sp := &c.svcs[k]
	switch c.rng.IntN(10) {
	case 0:
		c.svcs = append(c.svcs, c.newService())
	case 1:
		c.svcs = slices.Delete(c.svcs, k, k+1)
	case 2:
		sp.Endpoints = append(sp.Endpoints, c.endpoint(c.next+k, len(sp.Endpoints)+c.rng.IntN(200)))
	case 3:
		if n := len(sp.Endpoints); n > 0 {
			sp.Endpoints = slices.Delete(sp.Endpoints, n-1, n)
		}
	case 4:
		if n := len(sp.Endpoints); n > 0 {
			e := &sp.Endpoints[c.rng.IntN(n)]
			e.Ready = !e.Ready // in place: the Proxier must have copied it
		}
	case 5:
		sp.NodePort = int32(30000 + c.rng.IntN(100))
		sp.ExternalPolicyLocal = c.rng.IntN(2) == 0
	case 6:
		sp.SessionAffinityClientIP = !sp.SessionAffinityClientIP
	case 7:
		second := *sp
		second.PortName, second.Port = "metrics", 9090
		second.Endpoints = slices.Clone(sp.Endpoints)
		if !slices.ContainsFunc(c.svcs, func(o ServicePort) bool {
			return o.Namespace == second.Namespace && o.Name == second.Name && o.PortName == "metrics"
		}) {
			c.svcs = append(c.svcs, second)
		}
	case 8:
		sp.InternalPolicyLocal = !sp.InternalPolicyLocal
	case 9:
		// In place again, in the other slices the Proxier must have copied.
		if len(sp.LoadBalancerSourceRanges) == 0 {
			sp.NodePort, sp.ExternalIPs = 30100, []netip.Addr{netip.MustParseAddr("192.0.2.10")}
			sp.LoadBalancerIPs = []netip.Addr{netip.MustParseAddr("192.0.2.20")}
			sp.LoadBalancerSourceRanges = []string{"198.51.100.0/24"}
		} else {
			sp.ExternalIPs[0] = netip.AddrFrom4([4]byte{192, 0, 2, byte(c.rng.IntN(250))})
			sp.LoadBalancerIPs[0] = netip.AddrFrom4([4]byte{192, 0, 2, byte(c.rng.IntN(250))})
			sp.LoadBalancerSourceRanges[0] = "203.0.113." + strconv.Itoa(c.rng.IntN(250)) + "/32"
		}
	}
}

func TestMemoizedPartialSyncsEqualFullyRenderedOnes(t *testing.T) {
	// The memo skips preparing and rendering Services whose input did not
	// change. Whatever the sequence of changes, the payloads must be the
	// bytes a Proxier without the memo writes. Endpoint counts wander
	// across the 1,000 of large-cluster mode, which changes every chain.
	for seed := uint64(1); seed <= 8; seed++ {
		c := &randomCluster{rng: rand.New(rand.NewPCG(seed, 42))}
		for range 60 {
			c.svcs = append(c.svcs, c.newService())
		}
		memo, err := NewProxier(goldenConfig())
		if err != nil {
			t.Fatal(err)
		}
		plain, _ := NewProxier(goldenConfig())
		plain.noMemo = true
		partial, reused := 0, 0
		for step := range 150 {
			a, err := memo.Sync(c.svcs)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			b, _ := plain.Sync(c.svcs)
			if string(a.Payload) != string(b.Payload) || a.Full != b.Full || !slices.Equal(a.DeletedChains, b.DeletedChains) || a.NATRules != b.NATRules {
				t.Fatalf("seed %d step %d: memoized sync differs from the plain one\nmemo:\n%s\nplain:\n%s", seed, step, a.Payload, b.Payload)
			}
			if !a.Full {
				partial++
			}
			reused += a.out.reused
			if b.out.reused != 0 {
				t.Fatalf("seed %d step %d: the Proxier without memo reused %d Services", seed, step, b.out.reused)
			}
			// Now and then a restore fails, which makes the next sync full.
			var restoreErr error
			if c.rng.IntN(20) == 0 {
				restoreErr = errors.New("iptables-restore: exit status 1")
			}
			memo.Applied(a, restoreErr)
			plain.Applied(b, restoreErr)
			for range 1 + c.rng.IntN(3) {
				c.mutate()
			}
		}
		if reused < 1000 {
			t.Errorf("seed %d: only %d Services were taken from the memo; the test did not exercise it", seed, reused)
		}
		if partial < 100 {
			t.Errorf("seed %d: only %d of 150 syncs were partial; the test did not exercise the memo", seed, partial)
		}
	}
}

func TestMemoSkipsUnchangedServicesEntirely(t *testing.T) {
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	svcs := benchServices(50, 3)
	r, _ := p.Sync(svcs)
	p.Applied(r, nil)
	gone := ServicePortEndpointChainName("bench/svc7:http", "tcp", svcs[7].Endpoints[0].String())
	svcs[7].Endpoints[0].IP = addr("10.9.9.9")
	r, _ = p.Sync(svcs)
	if !slices.Equal(r.DeletedChains, []Chain{gone}) {
		t.Errorf("DeletedChains = %v, want the replaced endpoint's %s", r.DeletedChains, gone)
	}
	if len(r.memo) != 50 {
		t.Fatalf("memo holds %d ports, want 50", len(r.memo))
	}
	for k, m := range r.memo {
		if k.name == "svc7" {
			if m.sp == p.memo[k].sp {
				t.Errorf("changed svc7 reused its old prepared form")
			}
		} else if m.sp != p.memo[k].sp {
			t.Errorf("unchanged %s was prepared again", k.name)
		}
	}
	want := []Chain{ServicePortChainName("bench/svc7:http", "tcp"), gone}
	for _, e := range svcs[7].Endpoints {
		want = append(want, ServicePortEndpointChainName("bench/svc7:http", "tcp", e.String()))
	}
	got := slices.DeleteFunc(ChainsFromSave(r.Payload, TableNAT), func(c Chain) bool { return !IsServiceChainName(c) })
	// svc7's endpoint 0 is local, so its EXT chain is declared too.
	got = slices.DeleteFunc(got, func(c Chain) bool { return c == ServiceExternalChainName("bench/svc7:http", "tcp") })
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("partial sync declared %v, want only svc7's chains and the deleted one %v", got, want)
	}
}

func TestServicePortEqualSeesEveryField(t *testing.T) {
	// equal decides whether a Service is rendered again; a field it missed
	// would leave stale rules in the kernel. Change each field in turn.
	base := ServicePort{Namespace: "a", Name: "b", PortName: "c", Protocol: "TCP", ClusterIP: addr("10.100.0.1"), Port: 80,
		Endpoints: []Endpoint{ready("10.0.0.1", 80)}}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		changed := base.clone()
		f := reflect.ValueOf(&changed).Elem().Field(i)
		name := v.Type().Field(i).Name
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Int, reflect.Int32:
			f.SetInt(f.Int() + 1)
		case reflect.Struct: // netip.Addr
			f.Set(reflect.ValueOf(addr("10.100.0.2")))
		case reflect.Slice:
			switch f.Type().Elem() {
			case reflect.TypeFor[netip.Addr]():
				f.Set(reflect.ValueOf([]netip.Addr{addr("192.0.2.1")}))
			case reflect.TypeFor[string]():
				f.Set(reflect.ValueOf([]string{"192.0.2.0/24"}))
			case reflect.TypeFor[Endpoint]():
				changed.Endpoints = []Endpoint{ready("10.0.0.1", 80)}
				changed.Endpoints[0].Terminating = true
			default:
				t.Fatalf("field %s: slice of %s not covered by this test", name, f.Type().Elem())
			}
		default:
			t.Fatalf("field %s: kind %s not covered by this test", name, f.Kind())
		}
		if base.equal(&changed) {
			t.Errorf("equal misses a change of %s", name)
		}
	}
	c := base.clone()
	if !base.equal(&c) {
		t.Errorf("a clone is not equal to its original")
	}
	c.Endpoints[0].Ready = false
	if !base.Endpoints[0].Ready {
		t.Errorf("clone shares its Endpoints with the original")
	}
}

func TestMemoIsNotUsedAcrossALargeClusterModeChange(t *testing.T) {
	// Crossing 1,000 endpoints drops (or restores) the endpoint comments in
	// every Service's chains, so even Services whose input is the same must
	// be written again.
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	svcs := benchServices(333, 3) // 999 endpoints
	r, _ := p.Sync(svcs)
	p.Applied(r, nil)
	svcs[0].Endpoints = append(svcs[0].Endpoints, ready("10.9.9.1", 8080), ready("10.9.9.2", 8080)) // 1,001
	r, _ = p.Sync(svcs)
	if r.Full || r.out.reused != 0 {
		t.Fatalf("full %v, %d Services reused across the change to large-cluster mode", r.Full, r.out.reused)
	}
	if !strings.Contains(string(r.Payload), ":"+string(ServicePortChainName("bench/svc200:http", "tcp"))+" ") {
		t.Errorf("an unchanged Service's chains were not rewritten for large-cluster mode")
	}
	p.Applied(r, nil)
	r, _ = p.Sync(svcs)
	if r.out.reused != 333 {
		t.Errorf("a no-op sync in large-cluster mode reused %d of 333 Services", r.out.reused)
	}
}

func TestCloneSharesNoSliceWithTheOriginal(t *testing.T) {
	sp := ServicePort{ExternalIPs: []netip.Addr{addr("192.0.2.1")}, LoadBalancerIPs: []netip.Addr{addr("192.0.2.2")},
		LoadBalancerSourceRanges: []string{"10.0.0.0/8"}, Endpoints: []Endpoint{ready("10.0.0.1", 80)}}
	c := sp.clone()
	a, b := reflect.ValueOf(sp), reflect.ValueOf(c)
	for i := range a.NumField() {
		if a.Field(i).Kind() != reflect.Slice {
			continue
		}
		if a.Field(i).Len() == 0 {
			t.Fatalf("field %s: give it an element in this test", a.Type().Field(i).Name)
		}
		if a.Field(i).Pointer() == b.Field(i).Pointer() {
			t.Errorf("clone shares %s with the original", a.Type().Field(i).Name)
		}
	}
}

func TestAResultBuiltBeforeAnotherWasAppliedMakesTheNextSyncFull(t *testing.T) {
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	svcs := benchServices(3, 2)
	r, _ := p.Sync(svcs)
	p.Applied(r, nil)
	svcs[1].Endpoints[0].IP = addr("10.9.9.9")
	r1, _ := p.Sync(svcs)
	svcs[1].Endpoints[0].IP = addr("10.1.0.1")
	r2, _ := p.Sync(svcs)
	p.Applied(r1, nil)
	p.Applied(r2, nil) // built on the state before r1
	if r, _ = p.Sync(svcs); !r.Full {
		t.Errorf("after a stale result was applied the next sync is partial; r1's chains would stay in the kernel")
	}
}
