package cluster

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func load(t *testing.T, name string) *spec.Topology {
	t.Helper()
	top, err := spec.Load("../../topologies/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return top
}

func TestEndpointsFollowSelectorsAndResolveNamedTargetPorts(t *testing.T) {
	top := load(t, "clusterip")
	var web *ServicePort
	sps := Endpoints(top)
	for i := range sps {
		if sps[i].Service.Name == "web" {
			web = &sps[i]
		}
	}
	if web == nil || len(web.Endpoints) != 3 {
		t.Fatalf("web endpoints: %+v", web)
	}
	nodes := map[string]bool{}
	for _, e := range web.Endpoints {
		if e.Port != 80 {
			t.Errorf("targetPort http resolved to %d, want the container port 80", e.Port)
		}
		nodes[e.Node] = true
	}
	if len(nodes) != 3 {
		t.Errorf("endpoints on %v, want node51, node71 and node81", nodes)
	}
}

func TestKubeProxyMarksOnlyThisNodesEndpointsLocal(t *testing.T) {
	top := load(t, "clusterip")
	for _, sp := range ProxyServices(Endpoints(top), "node71") {
		if sp.Name != "web" {
			continue
		}
		local := 0
		for _, e := range sp.Endpoints {
			if e.Local {
				local++
			}
		}
		if local != 1 {
			t.Errorf("node71 sees %d local web endpoints, want 1", local)
		}
	}
}

func TestDNSRecordsAndResolvConfMatchKubeletAndCoreDNS(t *testing.T) {
	top := load(t, "clusterip")
	recs := DNSRecords(top)
	if recs["web.default.svc.cluster.local."].String() != "10.100.0.100" ||
		recs["kube-dns.kube-system.svc.cluster.local."].String() != "10.100.0.10" {
		t.Errorf("records %v", recs)
	}
	rc := ResolvConf(top, "default")
	for _, want := range []string{"search default.svc.cluster.local svc.cluster.local cluster.local", "nameserver 10.100.0.10", "ndots:5"} {
		if !strings.Contains(rc, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, rc)
		}
	}
}

func TestEKSServiceCIDRInATenSlashEightVPC(t *testing.T) {
	top, err := spec.Generate("g", 2, 2, 1) // 10.0.0.0/16
	if err != nil {
		t.Fatal(err)
	}
	if got := top.ClusterDNSIP().String(); got != "172.20.0.10" {
		t.Errorf("cluster DNS %s, want 172.20.0.10 for a VPC in 10/8", got)
	}
}
