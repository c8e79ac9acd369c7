package kubeproxy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJumpRestoreLinesReproduceKubeProxyPrependOrder(t *testing.T) {
	// kube-proxy.md §1.2: iptables-save of a fresh node after kube-proxy
	// prepended every jump rule.
	wantFilter := []string{
		`-A INPUT -j KUBE-FIREWALL`,
		`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
		`-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS`,
		`-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
		`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
		`-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD`,
		`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES`,
		`-A OUTPUT -j KUBE-FIREWALL`,
		`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL`,
		`-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
	}
	wantNAT := []string{
		`-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
	}
	if diff := cmp.Diff(wantFilter, JumpRestoreLines(TableFilter)); diff != "" {
		t.Errorf("filter (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantNAT, JumpRestoreLines(TableNAT)); diff != "" {
		t.Errorf("nat (-want +got):\n%s", diff)
	}
}

func TestJumpRuleArgsAreWhatEnsureRuleReceives(t *testing.T) {
	rules := JumpRules()
	if len(rules) != 14 {
		t.Fatalf("got %d jump rules, want 12 kube-proxy + 2 kubelet", len(rules))
	}
	want := []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally-visible service portals", "-j", "KUBE-EXTERNAL-SERVICES"}
	if diff := cmp.Diff(want, rules[0].Args()); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"-j", "KUBE-FIREWALL"}, rules[13].Args()); diff != "" {
		t.Errorf("kubelet rule Args (-want +got):\n%s", diff)
	}
	// Args must return a fresh slice each time.
	rules[0].Args()[0] = "x"
	if rules[0].ExtraArgs[0] != "-m" {
		t.Errorf("Args aliases ExtraArgs")
	}
}

func TestInitialRestoreHooksAFreshNamespace(t *testing.T) {
	for _, localhost := range []bool{true, false} {
		cfg := goldenConfig()
		cfg.LocalhostNodePorts = localhost
		payload, err := Render(cfg, overallServices())
		if err != nil {
			t.Fatal(err)
		}
		initial, err := InitialRestore(payload)
		if err != nil {
			t.Fatal(err)
		}
		k := newKernelModel()
		if err := k.restore(string(initial)); err != nil {
			t.Fatalf("localhost=%v: %v\n%s", localhost, err, initial)
		}
		if diff := cmp.Diff(JumpRestoreLines(TableFilter), slices.Concat(k.tables["filter"]["INPUT"], k.tables["filter"]["FORWARD"], k.tables["filter"]["OUTPUT"])); diff != "" {
			t.Errorf("localhost=%v: filter built-in chains (-want +got):\n%s", localhost, diff)
		}
		for _, table := range []string{"mangle", "nat", "filter"} {
			if !slices.Contains(k.chains(table), string(ChainProxyCanary)) {
				t.Errorf("localhost=%v: no canary chain in %s", localhost, table)
			}
		}
		// Without localhost NodePorts the payload does not declare
		// KUBE-FIREWALL, so InitialRestore must (EnsureChain upstream).
		if !slices.Contains(k.chains("filter"), string(ChainKubeletFirewall)) {
			t.Errorf("localhost=%v: KUBE-FIREWALL missing", localhost)
		}
		// A later partial sync must apply on top.
		p, _ := NewProxier(cfg)
		r, _ := p.Sync(overallServices())
		if err := k.restore(string(r.Payload)); err != nil {
			t.Errorf("localhost=%v: full sync on top of the initial restore: %v", localhost, err)
		}
	}
}

func TestInitialRestoreRejectsTruncatedPayload(t *testing.T) {
	payload, _ := Render(goldenConfig(), nil)
	truncated := strings.TrimSuffix(string(payload), "COMMIT\n")
	if _, err := InitialRestore([]byte(truncated)); err == nil {
		t.Errorf("InitialRestore accepted a payload without its last COMMIT")
	}
}

func TestEnsureJumpsPutsBackOnlyTheMissingOnes(t *testing.T) {
	save := "*filter\n:INPUT ACCEPT [0:0]\n" + strings.Join(JumpRestoreLines(TableFilter), "\n") + "\nCOMMIT\n" +
		"*nat\n:PREROUTING ACCEPT [0:0]\n" + strings.Join(JumpRestoreLines(TableNAT), "\n") + "\nCOMMIT\n"
	if got := EnsureJumps([]byte(save)); got != "" {
		t.Errorf("every jump is there, yet EnsureJumps wants:\n%s", got)
	}
	gone := `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`
	if !strings.Contains(save, gone+"\n") {
		t.Fatalf("test save lacks %s", gone)
	}
	got := EnsureJumps([]byte(strings.Replace(save, gone+"\n", "", 1)))
	want := "*nat\n-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n"
	if got != want {
		t.Errorf("EnsureJumps = %q, want %q", got, want)
	}
}
