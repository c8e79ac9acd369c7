package walk

import (
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// A pod-to-pod walk listens on every interface of both ends' nodes,
// including the veths of pods that take no part (a flow leaking onto
// pod61's veth must be seen to be caught), every router port and bridge,
// and nothing on node81, which is neither end's node.
func TestPodWalkListensOnEveryVethAndENIOfTheEndsNodesAndEveryRouterPort(t *testing.T) {
	e := derive(t, "A2") // pod51 (node51) to pod71 (node71)
	var got []string
	for _, p := range e.Points {
		got = append(got, p.String())
	}
	veth := func(node, pod string) string { return node + "/" + spec.HostVethName("default", pod) }
	want := []string{
		"node51/eth0", "node51/eth1", veth("node51", "pod51"), veth("node51", "pod61"),
		"node71/eth0", veth("node71", "pod71"),
		"pod51/eth0", "pod71/eth0",
		"vpc/br-a", "vpc/br-b",
		"vpc/client.eth0", "vpc/node51.eth0", "vpc/node51.eth1", "vpc/node71.eth0", "vpc/node81.eth0", "vpc/node81.eth1",
	}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("capture points of A2:\n got  %v\n want %v", got, want)
	}
}

// stateFor is a pod51/node51 snapshot as the VPC CNI leaves it; other
// objects have none, so only pod51's checks are looked at.
func stateFor(t *testing.T, top *spec.Topology, permanent bool, mac string) map[string]*NSState {
	t.Helper()
	p := top.Pod("pod51")
	if p == nil {
		t.Fatal("no pod51")
	}
	veth := spec.HostVethName(p.Namespace, p.Name)
	vmac := spec.HostVethMAC(p.Namespace, p.Name)
	nmac := vmac
	if mac != "" {
		var err error
		if nmac, err = net.ParseMAC(mac); err != nil {
			t.Fatal(err)
		}
	}
	pod := &NSState{Object: "pod51", Links: map[string]LinkState{"eth0": {Name: "eth0", MTU: top.VPC.MTU, Up: true}},
		Addrs:  []AddrState{{Dev: "eth0", Prefix: netip.PrefixFrom(p.IP, 32)}},
		Neighs: []NeighState{{Dev: "eth0", IP: spec.PodGateway, MAC: nmac, Permanent: permanent}}}
	node := &NSState{Object: "node51", Links: map[string]LinkState{veth: {Name: veth, MAC: vmac, MTU: top.VPC.MTU, Up: true}}}
	return map[string]*NSState{"pod51": pod, "node51": node}
}

func gatewayNeighCheck(t *testing.T, r *StateReport) StateCheck {
	t.Helper()
	for _, c := range r.Checks {
		if c.Object == "pod51" && strings.HasPrefix(c.What, "169.254.1.1 PERMANENT") {
			return c
		}
	}
	t.Fatalf("no check of pod51's 169.254.1.1 neighbour entry in %+v", r.Checks)
	return StateCheck{}
}

// A0 needs pod51's entry for 169.254.1.1 to be PERMANENT with the host
// veth's MAC (the VPC CNI's static ARP entry): a learned (REACHABLE, STALE)
// entry or another MAC fails it.
func TestA0FailsANeighbourEntryThatIsNotPermanentOrHasTheWrongMAC(t *testing.T) {
	top := topo(t)
	if c := gatewayNeighCheck(t, CheckState(top, stateFor(t, top, true, ""))); !c.OK {
		t.Fatalf("a PERMANENT entry with the veth's MAC fails: %+v", c)
	}
	r := CheckState(top, stateFor(t, top, false, ""))
	if c := gatewayNeighCheck(t, r); c.OK || !strings.Contains(c.Got, "permanent=false") {
		t.Errorf("a learned entry passes: %+v", c)
	}
	if r.Passed() {
		t.Error("the report passes with a learned entry")
	}
	if c := gatewayNeighCheck(t, CheckState(top, stateFor(t, top, true, "02:00:00:00:00:01"))); c.OK {
		t.Errorf("a PERMANENT entry with another MAC passes: %+v", c)
	}
}
