package spec

import (
	"strings"
	"testing"
)

// svcWith is svc with extra lines under spec: and metadata annotations.
func svcWith(specLines, annotations string) string {
	s := svc
	if annotations != "" {
		s = strings.Replace(s, "metadata: {name: web}", "metadata:\n  name: web\n  annotations: {"+annotations+"}", 1)
	}
	return strings.Replace(s, "spec:\n", "spec:\n"+specLines, 1)
}

func TestTopologyRoutingValuesTheAPIServerRefusesAreErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"trafficDistribution typo", svcWith("  trafficDistribution: PreferClosest\n", ""),
			[]string{"t.yaml:", "Service default/web", "spec.trafficDistribution", `Unsupported value: "PreferClosest"`}},
		{"internalTrafficPolicy typo", svcWith("  internalTrafficPolicy: local\n", ""),
			[]string{"Service default/web", "spec.internalTrafficPolicy", `Unsupported value: "local"`}},
		{"PreferSameNode", svcWith("  trafficDistribution: PreferSameNode\n", ""),
			[]string{"spec.trafficDistribution", "PreferSameNode (node hints) is not modelled"}},
	} {
		t.Run(c.name, func(t *testing.T) { mustFail(t, lab+deploy+c.yaml, c.want...) })
	}
}

func TestTopologyRoutingCombinationsUpstreamIgnoresAreWarnings(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       string
	}{
		{"annotation overrides trafficDistribution", svcWith("  trafficDistribution: PreferClose\n", "service.kubernetes.io/topology-mode: Auto"),
			"spec.trafficDistribution PreferClose is ignored: with service.kubernetes.io/topology-mode: Auto"},
		{"deprecated annotation wins", svcWith("", "service.kubernetes.io/topology-mode: Auto, service.kubernetes.io/topology-aware-hints: aUto"),
			`service.kubernetes.io/topology-aware-hints: "aUto" is not "Auto" or "auto"`},
		{"wrong case", svcWith("", "service.kubernetes.io/topology-mode: AUTO"),
			`service.kubernetes.io/topology-mode: "AUTO" is not "Auto" or "auto"`},
		{"iTP Local with hints", svcWith("  trafficDistribution: PreferSameZone\n  internalTrafficPolicy: Local\n", ""),
			"internalTrafficPolicy: Local: kube-proxy sends traffic from pods to this node's endpoints only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			top, err := parse(t, lab+deploy+c.yaml)
			if err != nil {
				t.Fatalf("upstream accepts this Service: %v", err)
			}
			found := false
			for _, w := range top.Manifests.Warnings {
				found = found || (strings.Contains(w, c.want) && strings.Contains(w, "t.yaml:") && strings.Contains(w, "Service default/web"))
			}
			if !found {
				t.Errorf("no warning %q (with file, line and object) in %v", c.want, top.Manifests.Warnings)
			}
		})
	}
}

func TestTopologyRoutingFieldsThatWorkGiveNoWarning(t *testing.T) {
	for _, y := range []string{
		svcWith("  trafficDistribution: PreferClose\n", ""),
		svcWith("  internalTrafficPolicy: Local\n", ""),
		svcWith("", "service.kubernetes.io/topology-mode: Auto"),
		svcWith("", "service.kubernetes.io/topology-mode: Disabled"),
	} {
		top, err := parse(t, lab+deploy+y)
		if err != nil {
			t.Fatal(err)
		}
		if len(top.Manifests.Warnings) > 0 {
			t.Errorf("warnings %v for a Service the lab models as upstream does", top.Manifests.Warnings)
		}
	}
}
