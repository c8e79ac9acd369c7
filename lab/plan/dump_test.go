package plan

import (
	"strings"
	"testing"
)

func TestNodeRestorePutsKubeProxyJumpsBeforeAWSRules(t *testing.T) {
	p := Build(podNetworking(t), "x")
	rules := rulesByTable(p.NS("node51").Iptables)
	nat := strings.Join(rules["nat"], "\n")
	kube := strings.Index(nat, "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES")
	aws := strings.Index(nat, "-A PREROUTING -i eni+ -m comment --comment \"AWS, outbound connections\"")
	if kube < 0 || aws < 0 || kube > aws {
		t.Fatalf("nat PREROUTING must jump to KUBE-SERVICES before AWS-CONNMARK-CHAIN-0 (issue #3563):\n%s", nat)
	}
	post := strings.Index(nat, "-j KUBE-POSTROUTING")
	snat := strings.Index(nat, "-j AWS-SNAT-CHAIN-0")
	if post < 0 || snat < 0 || post > snat {
		t.Fatalf("nat POSTROUTING order wrong:\n%s", nat)
	}
	if len(rules["mangle"]) != 3 || len(rules["filter"]) == 0 {
		t.Errorf("mangle %d rules (want aws-node's 3), filter %d", len(rules["mangle"]), len(rules["filter"]))
	}
}
