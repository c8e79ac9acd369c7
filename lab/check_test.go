package lab

import (
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

// A walk the format accepts but the engine cannot derive is refused before
// anything is created, never a crash in the middle of a walk.
func TestCheckRefusesAWalkFromTheInternetToAnInstance(t *testing.T) {
	b, err := os.ReadFile("../topologies/pod-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "walks:\n", "walks:\n  - {name: X2, from: server, to: client, protocol: tcp}\n", 1)
	text = strings.Replace(text, "    - {private: 192.168.1.80, public: 203.0.113.80}\n",
		"    - {private: 192.168.1.80, public: 203.0.113.80}\n    - {private: 192.168.2.10, public: 203.0.113.10}\n", 1)
	top, err := spec.Parse("x.yaml", "x", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Check(top)
	if err == nil || !strings.Contains(err.Error(), "walks[0] (X2): from internet host server to client is not modelled") {
		t.Fatalf("Check = %v, want the walk refused by name", err)
	}
	shipped, err := spec.Load("../topologies/pod-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Check(shipped); err != nil {
		t.Errorf("the shipped pod-egress is refused: %v", err)
	}
}
