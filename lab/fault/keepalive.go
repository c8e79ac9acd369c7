package fault

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

// ShortKeepAlive is the keep-alive the target-keepalive-short fault gives
// the targets' apps: Node.js's default server.keepAliveTimeout, 5 s,
// scaled like the ALB's timers (lb.TimeScale), so 250 ms against the lab
// ALB's idle timeout of 3 s (60 s scaled).
const ShortKeepAlive = 5 * time.Second / lb.TimeScale

// keepAliveTarget is one target the fault changes: its app's keep-alive,
// and on its node, the rules that lose its first FINs to the ALB's nodes.
type keepAliveTarget struct {
	Object, Node string
	IP           netip.Addr
	Port         int
}

// finRule is one iptables rule of the fault in a node's filter FORWARD
// chain; Name, its hashlimit table's name, identifies it in iptables-save.
type finRule struct {
	Node, Name, Spec string
}

// keepAlivePlan is what target-keepalive-short changes for walk w, from the
// topology: the targets of the ALB rule the walk's path matches, and on
// each target's node one rule per ALB node that drops the first four FINs
// the target sends on each connection to that ALB node.
//
// Why lost FINs: the real 502 happens when the target's FIN and the ALB's
// next request cross on the wire, a window of microseconds. A netem delay
// on the target->ALB direction would widen it faithfully, but the lab's
// kernels may lack sch_netem (and the other delaying qdiscs); iptables'
// hashlimit is everywhere the lab runs. A FIN that is lost four times
// reaches the ALB with its fourth retransmission, some 800 ms later (the
// kernel retransmits it every 200 ms or more, its minimum RTO), so for
// that long the FIN is, as far as the ALB knows, still in flight: the target has closed, the ALB reuses the
// connection, the target's kernel answers the request with a RST and the
// ALB answers 502. Every packet of that exchange is real and captured.
func keepAlivePlan(t *spec.Topology, w spec.Walk) ([]keepAliveTarget, []finRule, error) {
	m, err := lb.Build(t)
	if err != nil {
		return nil, nil, err
	}
	hasALB := false
	for _, l := range m.LBs {
		hasALB = hasALB || l.Kind == lb.ALB
	}
	if !hasALB {
		return nil, nil, fmt.Errorf("topology %s has no ALB (an Ingress of class alb): target-keepalive-short breaks the keep-alive "+
			"between an ALB and its targets", t.Name)
	}
	var l *lb.LoadBalancer
	for _, c := range m.LBs {
		if c.Kind == lb.ALB && (c.Owner == "Ingress "+w.LoadBalancer || c.Owner == "Ingress "+spec.DefaultNamespace+"/"+w.LoadBalancer) {
			l = c
		}
	}
	if l == nil {
		return nil, nil, fmt.Errorf("topology %s, walk %s: loadBalancer %q is not an ALB: target-keepalive-short needs an ALB walk",
			t.Name, w.Name, w.LoadBalancer)
	}
	rule := l.Match(w.Path)
	if rule == nil || len(rule.Group.Targets) == 0 {
		return nil, nil, fmt.Errorf("topology %s, walk %s: no rule of %s with targets matches path %q", t.Name, w.Name, l.Owner, w.Path)
	}
	if rule.Group.TargetType != lb.TargetIP {
		return nil, nil, fmt.Errorf("topology %s, walk %s: target group %s has %s targets; target-keepalive-short needs ip targets (pods)",
			t.Name, w.Name, rule.Group.Name, rule.Group.TargetType)
	}
	var targets []keepAliveTarget
	var rules []finRule
	perNode := map[string]int{}
	for _, tg := range rule.Group.Targets {
		p := t.Pod(tg.Object)
		if p == nil {
			return nil, nil, fmt.Errorf("topology %s: target %s of %s is no pod", t.Name, tg.Object, rule.Group.Name)
		}
		targets = append(targets, keepAliveTarget{Object: p.Name, Node: p.Node, IP: tg.IP, Port: tg.Port})
		for _, n := range l.Nodes {
			name := fmt.Sprintf("lab-fin-%d", perNode[p.Node])
			perNode[p.Node]++
			rules = append(rules, finRule{Node: p.Node, Name: name, Spec: fmt.Sprintf(
				"-s %s/32 -d %s/32 -p tcp -m tcp --sport %d --tcp-flags FIN FIN -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 4 "+
					"--hashlimit-mode srcip,srcport,dstip,dstport --hashlimit-name %s -m comment --comment \"lab fault: FIN lost\" -j DROP",
				tg.IP, n.IP, tg.Port, name)})
		}
	}
	return targets, rules, nil
}
