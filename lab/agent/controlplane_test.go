package agent

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func TestPodListNamesTheNamespacesPodsWithNodeAndIP(t *testing.T) {
	b, err := os.ReadFile("../../topologies/control-plane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top, err := spec.Parse("control-plane.yaml", "control-plane", b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(PodList(top, "default"))
	for _, want := range []string{`"kind":"PodList"`, `"name":"pod12","namespace":"default"`, `"nodeName":"node11"`,
		`"podIP":"192.168.1.12"`, `"name":"pod22"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pod list %s lacks %s", out, want)
		}
	}
	out, _ = json.Marshal(PodList(top, "kube-system"))
	if strings.Contains(string(out), "pod12") || !strings.Contains(string(out), `"items":[]`) {
		t.Errorf("kube-system's list %s: want no pods (an empty items list)", out)
	}
}
