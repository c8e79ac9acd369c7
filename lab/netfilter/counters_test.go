package netfilter

import (
	"reflect"
	"testing"
)

func TestMovedChainsNamesOnlyChainsWhoseCountersGrew(t *testing.T) {
	before := `*nat
:KUBE-SERVICES - [0:0]
[0:0] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
[0:0] -A KUBE-SERVICES -d 10.100.0.100/32 -p tcp -j KUBE-SVC-AAA
[3:180] -A KUBE-SVC-AAA -m statistic --mode random --probability 0.5 -j KUBE-SEP-X
[0:0] -A KUBE-SEP-Y -p tcp -j DNAT --to-destination 192.168.1.5:80
`
	after := `*nat
[1:60] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
[1:60] -A KUBE-SERVICES -d 10.100.0.100/32 -p tcp -j KUBE-SVC-AAA
[3:180] -A KUBE-SVC-AAA -m statistic --mode random --probability 0.5 -j KUBE-SEP-X
[1:60] -A KUBE-SEP-Y -p tcp -j DNAT --to-destination 192.168.1.5:80
`
	got := MovedChains(before, after, "KUBE-")
	if want := []string{"KUBE-SERVICES", "KUBE-SEP-Y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("moved %v, want %v (PREROUTING is not a KUBE chain; KUBE-SVC-AAA's counter did not grow)", got, want)
	}
}
