package kubeproxy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// clusterIPService is a one-port ClusterIP Service with ready remote
// endpoints, as TestSyncProxyRulesRepeated builds them.
func clusterIPService(ns, name, portName, cip string, port int32, eps ...string) ServicePort {
	sp := ServicePort{Namespace: ns, Name: name, PortName: portName, Protocol: "TCP", ClusterIP: addr(cip), Port: port}
	for _, ip := range eps {
		sp.Endpoints = append(sp.Endpoints, ready(ip, port))
	}
	return sp
}

func TestPartialSyncMatchesUpstreamGoldenSteps(t *testing.T) {
	golden := partialSyncSteps(t)
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	kernel := newKernelModel()
	svc1 := clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80, "10.0.1.1")
	svc2 := clusterIPService("ns2", "svc2", "p8080", "172.30.0.42", 8080, "10.0.2.1")
	svc3 := clusterIPService("ns3", "svc3", "p80", "172.30.0.43", 80, "10.0.3.1")
	svc4 := clusterIPService("ns4", "svc4", "p80", "172.30.0.44", 80)
	svc4ep := clusterIPService("ns4", "svc4", "p80", "172.30.0.44", 80, "10.0.4.1")
	svc3b := clusterIPService("ns3", "svc3", "p80", "172.30.0.43", 80, "10.0.3.2")
	svc3c := clusterIPService("ns3", "svc3", "p80", "172.30.0.43", 80, "10.0.3.2", "10.0.3.3")

	steps := []struct {
		services []ServicePort
		full     bool
		// failFirst makes the first restore of the step fail, as the
		// upstream test provokes before step 9.
		failFirst bool
		natRules  int // nat rules in the kernel after the step (kube-proxy.md §6)
	}{
		{[]ServicePort{svc1, svc2}, true, false, 15},
		{[]ServicePort{svc1, svc2, svc3}, false, false, 20},
		{[]ServicePort{svc1, svc3}, false, false, 15},
		{[]ServicePort{svc1, svc3, svc4}, false, false, 15},
		{[]ServicePort{svc1, svc3, svc4ep}, false, false, 20},
		{[]ServicePort{svc1, svc3b, svc4ep}, false, false, 20},
		{[]ServicePort{svc1, svc3c, svc4ep}, false, false, 23},
		{[]ServicePort{svc1, svc3c, svc4ep}, false, false, 23},
		{[]ServicePort{svc1, svc3c}, true, true, 18},
	}
	for i, step := range steps {
		r, err := p.Sync(step.services)
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		if step.failFirst {
			if r.Full {
				t.Errorf("step %d: the sync before the failure should be partial", i+1)
			}
			p.Applied(r, errors.New("iptables-restore: exit status 1"))
			if r, err = p.Sync(step.services); err != nil {
				t.Fatalf("step %d retry: %v", i+1, err)
			}
		}
		if r.Full != step.full {
			t.Errorf("step %d: Full = %v, want %v", i+1, r.Full, step.full)
		}
		assertRulesEqual(t, golden[i], r.Payload)
		if r.Full {
			if err := checkRuleJumps(string(r.Payload)); err != nil {
				t.Errorf("step %d: %v", i+1, err)
			}
		}
		if err := kernel.restore(string(r.Payload)); err != nil {
			t.Fatalf("step %d: restore into kernel model: %v\n%s", i+1, err, r.Payload)
		}
		p.Applied(r, nil)
		if got := kernel.ruleCount("nat"); got != step.natRules {
			t.Errorf("step %d: kernel holds %d nat rules, want %d", i+1, got, step.natRules)
		}
		if d := kernel.danglingJumps("nat"); len(d) > 0 {
			t.Errorf("step %d: dangling nat jumps after restore: %v", i+1, d)
		}
	}
}

func TestPartialSyncRewritesEveryPortOfAChangedService(t *testing.T) {
	// kube-proxy tracks changes per Service (namespace/name), so an endpoint
	// change on one port rewrites the chains of all its ports.
	web := func(extra ...string) []ServicePort {
		http := clusterIPService("default", "web", "http", "10.100.0.10", 80, "10.0.1.10")
		https := clusterIPService("default", "web", "https", "10.100.0.10", 443, append([]string{"10.0.1.10"}, extra...)...)
		other := clusterIPService("default", "other", "http", "10.100.0.11", 80, "10.0.1.11")
		return []ServicePort{http, https, other}
	}
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := p.Sync(web())
	p.Applied(r, nil)
	r, err = p.Sync(web("10.0.2.10"))
	if err != nil {
		t.Fatal(err)
	}
	declared := ChainsFromSave(r.Payload, TableNAT)
	for _, want := range []Chain{
		ServicePortChainName("default/web:http", "tcp"),
		ServicePortChainName("default/web:https", "tcp"),
		ServicePortEndpointChainName("default/web:http", "tcp", "10.0.1.10:80"),
	} {
		if !slices.Contains(declared, want) {
			t.Errorf("partial sync did not rewrite %s of the changed Service", want)
		}
	}
	if unchanged := ServicePortChainName("default/other:http", "tcp"); slices.Contains(declared, unchanged) {
		t.Errorf("partial sync rewrote %s of an unchanged Service", unchanged)
	}
	p.Applied(r, nil)
	r, _ = p.Sync(web("10.0.2.10"))
	for _, c := range ChainsFromSave(r.Payload, TableNAT) {
		if IsServiceChainName(c) {
			t.Errorf("no-op partial sync rewrote %s", c)
		}
	}
}

func TestFailedRestoreMakesNextSyncFull(t *testing.T) {
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	svcs := []ServicePort{clusterIPService("ns1", "svc1", "p80", "172.30.0.41", 80, "10.0.1.1")}
	r, _ := p.Sync(svcs)
	p.Applied(r, nil)
	r, _ = p.Sync(svcs)
	if r.Full || strings.Contains(string(r.Payload), ":KUBE-SVC-") {
		t.Fatalf("second sync should be partial and skip the unchanged chains:\n%s", r.Payload)
	}
	p.Applied(r, errors.New("boom"))
	r, _ = p.Sync(svcs)
	if !r.Full || !strings.Contains(string(r.Payload), ":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]") {
		t.Errorf("sync after a failure should be full and rewrite every chain:\n%s", r.Payload)
	}
	p.Applied(r, nil)
	p.ForceFullSync()
	if r, _ = p.Sync(svcs); !r.Full {
		t.Errorf("ForceFullSync did not make the next sync full")
	}
}

func TestSetExistingChainsDeletesOnlyKubeProxyLeftovers(t *testing.T) {
	p, err := NewProxier(goldenConfig())
	if err != nil {
		t.Fatal(err)
	}
	save := []byte("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n" +
		":KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]\n:LAB-NLB - [0:0]\n:KUBE-MARK-MASQ - [0:0]\nCOMMIT\n" +
		"*filter\n:KUBE-SVC-CCCCCCCCCCCCCCCC - [0:0]\nCOMMIT\n")
	p.SetExistingChains(ChainsFromSave(save, TableNAT))
	r, err := p.Sync(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Chain{"KUBE-SEP-BBBBBBBBBBBBBBBB", "KUBE-SVC-AAAAAAAAAAAAAAAA"}
	if diff := cmp.Diff(want, r.DeletedChains); diff != "" {
		t.Errorf("DeletedChains (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(r.Payload), "-X KUBE-SVC-AAAAAAAAAAAAAAAA\n") || strings.Contains(string(r.Payload), "LAB-NLB") {
		t.Errorf("payload should delete the stale KUBE-SVC chain and leave LAB-NLB alone:\n%s", r.Payload)
	}
	p.Applied(r, nil)
	if r, _ = p.Sync(nil); len(r.DeletedChains) != 0 {
		t.Errorf("chains deleted once are deleted again: %v", r.DeletedChains)
	}
}

func TestChainsFromSaveReadsOnlyTheRequestedTable(t *testing.T) {
	save := []byte("# Generated by iptables-save\n*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FORWARD - [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [3:180]\n:KUBE-SVC-X - [0:0]\n-A PREROUTING -j KUBE-SVC-X\nCOMMIT\n")
	if diff := cmp.Diff([]Chain{"PREROUTING", "KUBE-SVC-X"}, ChainsFromSave(save, TableNAT)); diff != "" {
		t.Errorf("ChainsFromSave(nat) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Chain{"INPUT", "KUBE-FORWARD"}, ChainsFromSave(save, TableFilter)); diff != "" {
		t.Errorf("ChainsFromSave(filter) (-want +got):\n%s", diff)
	}
}
