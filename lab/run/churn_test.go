//go:build linux

package run

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/spec"
)

func TestChurnWalkSaysWhyItFailed(t *testing.T) {
	ch := &churn.PodChange{Deleted: spec.Pod{Name: "web-old"}, Started: spec.Pod{Name: "web-new"}}
	cases := []struct {
		name string
		c    Churn
		why  string // a word the reason must hold; empty: it passed
	}{
		{"passed", Churn{Change: ch, After: map[string]int{"web-new": 3, "web-x": 5}, Connections: 8}, ""},
		{"no delete", Churn{}, "no pod was deleted"},
		{"failed requests", Churn{Change: ch, Failures: 2, After: map[string]int{"web-new": 1}}, "2 of the requests failed"},
		{"old pod answered", Churn{Change: ch, After: map[string]int{"web-old": 1, "web-new": 1}}, "web-old still answered"},
		{"new pod silent", Churn{Change: ch, After: map[string]int{"web-x": 8}, Connections: 8}, "web-new answered none"},
	}
	for _, c := range cases {
		why := c.c.Why()
		if c.c.Passed() != (c.why == "") || !strings.Contains(why, c.why) || (c.why == "") != (why == "") {
			t.Errorf("%s: Passed %v, Why %q; want a reason holding %q", c.name, c.c.Passed(), why, c.why)
		}
	}
}
