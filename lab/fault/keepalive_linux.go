//go:build linux

package fault

import (
	"fmt"
	"strings"
	"time"

	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/spec"
)

// keepAliveShort gives the targets of walk w a keep-alive shorter than the
// ALB's idle timeout and loses their first FINs to the ALB on their nodes
// (keepAlivePlan), or undoes both. Both directions are idempotent, so a
// user's own fix (the keep-alive set back, or the rules deleted) still
// clears.
func (s *session) keepAliveShort(w spec.Walk, on bool) error {
	targets, rules, err := keepAlivePlan(s.Topo, w)
	if err != nil {
		return err
	}
	removed := false
	for _, r := range rules {
		h, err := s.NS(r.Node)
		if err != nil {
			return err
		}
		save, err := netfilter.Of(h).Save(h, false, "filter")
		if err != nil {
			return err
		}
		switch has := strings.Contains(save, "--hashlimit-name "+r.Name+" "); {
		case on && !has:
			err = s.restoreIn(r.Node, "*filter\n-I FORWARD 1 "+r.Spec+"\nCOMMIT\n")
		case !on && has:
			err, removed = s.restoreIn(r.Node, "*filter\n-D FORWARD "+r.Spec+"\nCOMMIT\n"), true
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.Node, err)
		}
	}
	k := ShortKeepAlive
	if !on {
		k = 0 // the app's own default: connections kept as long as the client likes
	}
	for _, t := range targets {
		if err := agent.SetKeepAlive(s.Lab, t.Object, k); err != nil {
			return err
		}
	}
	if removed {
		// FINs already lost are still to come, with their next
		// retransmission (200 ms or more apart): until then the ALB holds
		// connections their targets closed, and a request on one gets a
		// 502 after the fault is gone. Cleared means repaired.
		time.Sleep(finRetransmitted)
	}
	return nil
}

// finRetransmitted is how long a FIN lost just before the fault was
// cleared takes to reach the ALB with its next retransmission.
const finRetransmitted = time.Second
