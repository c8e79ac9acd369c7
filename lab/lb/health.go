package lb

import (
	"fmt"
	"strconv"
)

// GroupHealth is a target group's "target group health" thresholds: the
// fewest healthy targets a zone may have before the load balancer acts.
// Zero is "off". Below the DNS failover threshold the zone's node leaves
// DNS; below the routing failover threshold the node sends to every target
// available to it, unhealthy ones included. Targets available to a node are
// those in its zone, or every zone's with cross-zone on; the thresholds
// count those ("Target group health",
// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/target-group-health.html,
// and the same page under /network/).
type GroupHealth struct {
	DNSCount, DNSPercent         int
	RoutingCount, RoutingPercent int
}

// DNSOff is the DNSCount of "off": no count makes the zone fail away.
const DNSOff = -1

// dnsCount and routingCount are the counts in force (0: off).
func (h GroupHealth) dnsCount() int {
	switch h.DNSCount {
	case 0:
		return 1
	case DNSOff:
		return 0
	}
	return h.DNSCount
}

func (h GroupHealth) routingCount() int { return max(h.RoutingCount, 1) }

// The target group attributes that set GroupHealth, as the AWS Load
// Balancer Controller passes them from the target-group-attributes
// annotations.
const (
	attrDNSCount       = "target_group_health.dns_failover.minimum_healthy_targets.count"
	attrDNSPercent     = "target_group_health.dns_failover.minimum_healthy_targets.percentage"
	attrRoutingCount   = "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count"
	attrRoutingPercent = "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage"
)

// parseGroupHealth reads the thresholds from a target-group-attributes
// annotation (anno names it in errors).
func parseGroupHealth(anno string, attrs map[string]string) (GroupHealth, error) {
	var h GroupHealth
	for _, f := range []struct {
		key    string
		into   *int
		hi     int
		offOK  bool
		isPerc bool
	}{
		{attrDNSCount, &h.DNSCount, 1 << 20, true, false},
		{attrDNSPercent, &h.DNSPercent, 100, true, true},
		// The routing count cannot be off: "1 to the maximum number of targets".
		{attrRoutingCount, &h.RoutingCount, 1 << 20, false, false},
		{attrRoutingPercent, &h.RoutingPercent, 100, true, true},
	} {
		v, ok := attrs[f.key]
		if !ok {
			continue
		}
		if v == "off" && f.offOK {
			*f.into = 0
			if f.key == attrDNSCount {
				*f.into = DNSOff
			}
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > f.hi {
			want := "a number of targets from 1"
			if f.isPerc {
				want = "a percentage from 1 to 100"
			}
			if f.offOK {
				want = "off or " + want
			}
			return h, fmt.Errorf("annotation %s %s: %q is not %s", anno, f.key, v, want)
		}
		*f.into = n
	}
	// "The threshold for DNS failover must be greater than or equal to the
	// threshold for routing failover" (target group health page).
	if h.dnsCount() > 0 && h.dnsCount() < h.routingCount() {
		return h, fmt.Errorf("annotation %s: %s=%d is below %s=%d; DNS failover must come at or before routing failover",
			anno, attrDNSCount, h.dnsCount(), attrRoutingCount, h.routingCount())
	}
	if h.DNSPercent > 0 && h.RoutingPercent > 0 && h.DNSPercent < h.RoutingPercent {
		return h, fmt.Errorf("annotation %s: %s=%d is below %s=%d; DNS failover must come at or before routing failover",
			anno, attrDNSPercent, h.DNSPercent, attrRoutingPercent, h.RoutingPercent)
	}
	return h, nil
}

// below says whether healthy of total targets breaks a count or percentage
// threshold (either one, "when either threshold is breached"; zero is off).
func below(healthy, total, count, percent int) bool {
	return (count > 0 && healthy < count) || (percent > 0 && healthy*100 < percent*total)
}

// Available are the targets a node in az may send to at all: its zone's,
// or every zone's with cross-zone on.
func (g *TargetGroup) Available(az string) []Target {
	var out []Target
	for _, t := range g.Targets {
		if g.CrossZone || t.AZ == az {
			out = append(out, t)
		}
	}
	return out
}

// zoneCount is how many of the targets available in az are healthy, and
// how many there are.
func (g *TargetGroup) zoneCount(az string, healthy func(Target) bool) (ok, total int) {
	for _, t := range g.Available(az) {
		total++
		if healthy(t) {
			ok++
		}
	}
	return ok, total
}

// DNSFailed says whether the zone's healthy targets are below the group's
// DNS failover threshold, with a reason naming the group and the zone.
//
// A group with no target registered in any zone never fails a zone away:
// it has no healthy zone to send clients to (the load balancer fails open
// for an empty target group, and answers it with 503 or a reset).
func (g *TargetGroup) DNSFailed(az string, healthy func(Target) bool) (bool, string) {
	if len(g.Targets) == 0 {
		return false, ""
	}
	ok, total := g.zoneCount(az, healthy)
	if !below(ok, total, g.Health.dnsCount(), g.Health.DNSPercent) {
		return false, ""
	}
	if g.Health.dnsCount() == 1 && g.Health.DNSPercent == 0 {
		// The default threshold: no healthy target at all.
		if g.CrossZone {
			return true, fmt.Sprintf("target group %s has no healthy target in any zone (cross-zone on)", g.Name)
		}
		return true, fmt.Sprintf("target group %s has cross-zone off and no healthy target in %s", g.Name, az)
	}
	where := "in " + az
	if g.CrossZone {
		where = "in all zones (cross-zone on)"
	}
	return true, fmt.Sprintf("target group %s has %d healthy of %d targets %s, below its DNS failover threshold (%s)",
		g.Name, ok, total, where, g.Health.dnsString())
}

func (h GroupHealth) dnsString() string {
	return thresholdString(h.dnsCount(), h.DNSPercent)
}

func thresholdString(count, percent int) string {
	switch {
	case count > 0 && percent > 0:
		return fmt.Sprintf("%d targets or %d%%", count, percent)
	case percent > 0:
		return fmt.Sprintf("%d%%", percent)
	default:
		return fmt.Sprintf("%d targets", count)
	}
}
