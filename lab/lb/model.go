// Package lb decides which AWS load balancers a topology gets and how they
// are configured, as the AWS Load Balancer Controller (LBC) or the legacy
// in-tree service controller would decide from the same Services and
// Ingresses: target type, scheme, client IP preservation, cross-zone, health
// checks, listeners and rules. It is pure; the data path is built from this
// model by plan and the app server.
package lb

import (
	"crypto/sha1" //nolint:gosec // names, not security
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/spec"
)

// Kinds of load balancer.
const (
	NLB = "nlb"
	ALB = "alb"
)

// Target types.
const (
	TargetInstance = "instance"
	TargetIP       = "ip"
)

// Controllers.
const (
	LBC    = "aws-load-balancer-controller"
	Legacy = "in-tree service controller"
)

// LBCClass is the loadBalancerClass the LBC owns (and its webhook sets).
const LBCClass = "service.k8s.aws/nlb"

// TimeScale shortens every load balancer timer for the lab: health check
// intervals and timeouts (a 10 s interval becomes 0.5 s, so a lab settles
// in about a second; the thresholds are the controllers' own) and the
// ALB's timeouts towards targets.
const TimeScale = 20

// The ALB's timeouts towards a target (aws-lb.md §2.4): no connection
// within ALBConnectTimeout, or no answer within the idle timeout
// (idle_timeout.timeout_seconds, default 60), is a 504.
const (
	ALBConnectTimeout = 10 * time.Second
	ALBIdleTimeout    = 60 * time.Second
)

// NLBIdleTimeout is an NLB's TCP idle timeout (tcp.idle_timeout.seconds,
// default 350); unlike the health checks it is not scaled: no walk waits
// for it, and `conntrack -L` in the NLB shows the real countdown.
const NLBIdleTimeout = 350 * time.Second

// LoadBalancer is one NLB or ALB.
type LoadBalancer struct {
	Name       string // object (namespace) name, such as nlb-web
	Kind       string
	Controller string
	Scheme     string // internal or internet-facing
	Owner      string // "Service default/web" or "Ingress default/portal"
	Nodes      []Node // one per AZ
	Listeners  []Listener
	// CrossZone is the LB attribute load_balancing.cross_zone.enabled
	// (NLB default off; an ALB is always cross-zone at the LB level).
	CrossZone bool
	// Rules are an ALB's listener rules in priority order.
	Rules []Rule
	// Default is the listener's default action when an Ingress sets
	// spec.defaultBackend (priority 0: after every rule); nil is the 404.
	Default *Rule
}

// Node is the load balancer's ENI in one AZ.
type Node struct {
	AZ     string
	Subnet spec.Subnet
	IP     netip.Addr
	Public netip.Addr // internet-facing only
	Index  int        // eth<Index> in the LB namespace
}

// Listener is a front-end port and the target group it forwards to (NLB);
// an ALB listener forwards by its Rules.
type Listener struct {
	Port     int
	Protocol string // TCP, UDP or HTTP
	Group    *TargetGroup
}

// TargetGroup is a set of targets with one health check.
type TargetGroup struct {
	Name             string
	TargetType       string
	Port             int // the NodePort (instance) or targetPort (ip)
	PreserveClientIP bool
	// CrossZone is the effective cross-zone setting for this group.
	CrossZone bool
	// Health is when a zone fails away in DNS and when its node fails open.
	Health      GroupHealth
	HealthCheck HealthCheck
	Targets     []Target
}

// Target is one registered target.
type Target struct {
	Object string // node or pod
	IP     netip.Addr
	Port   int
	AZ     string
}

func (t Target) String() string { return fmt.Sprintf("%s:%d", t.IP, t.Port) }

// HealthCheck is a target group's health check as the controller sets it.
type HealthCheck struct {
	Protocol  string // TCP or HTTP
	Port      int    // 0 means the traffic port
	Path      string
	Interval  time.Duration
	Timeout   time.Duration
	Healthy   int
	Unhealthy int
	Matcher   string // HTTP codes, e.g. 200-399
}

// Rule is an ALB listener rule: path patterns and the group they forward to.
type Rule struct {
	Priority int
	Paths    []string // ALB path patterns, e.g. /order, /order/*
	Exact    bool
	Group    *TargetGroup
	Service  string
}

// Scaled is the health check with lab timing.
func (h HealthCheck) Scaled() (interval, timeout time.Duration) {
	return h.Interval / TimeScale, h.Timeout / TimeScale
}

// Pending is a LoadBalancer Service no controller builds, as EKS leaves it.
type Pending struct {
	Owner, Reason string
}

// Model is every load balancer of a topology.
type Model struct {
	LBs     []*LoadBalancer
	Pending []Pending
}

// Build decides the topology's load balancers. Errors name the object and
// the annotation or field.
func Build(t *spec.Topology) (*Model, error) {
	m := &Model{}
	b := &builder{t: t, sps: cluster.Endpoints(t), used: t.UsedAddrs()}
	lbc := t.LoadBalancerController == nil || *t.LoadBalancerController
	svcs := append([]*corev1.Service(nil), t.Manifests.Services...)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Namespace+"/"+svcs[i].Name < svcs[j].Namespace+"/"+svcs[j].Name })
	for _, s := range svcs {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		owner := "Service " + s.Namespace + "/" + s.Name
		ctrl, reason := controllerFor(s, lbc)
		if ctrl == "" {
			m.Pending = append(m.Pending, Pending{owner, reason})
			continue
		}
		l, err := b.nlb(s, ctrl)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", t.File, t.ServiceLine(s), owner, err)
		}
		m.LBs = append(m.LBs, l)
	}
	for _, in := range t.Manifests.Ingresses {
		owner := "Ingress " + in.Namespace + "/" + in.Name
		if !isALBIngress(in) {
			m.Pending = append(m.Pending, Pending{owner, "its ingress class is not alb; no controller in the lab owns it"})
			continue
		}
		if !lbc {
			m.Pending = append(m.Pending, Pending{owner, "the AWS Load Balancer Controller is not installed"})
			continue
		}
		l, err := b.alb(in)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", t.File, t.ManifestLine("Ingress", in.Namespace, in.Name), owner, err)
		}
		m.LBs = append(m.LBs, l)
	}
	return m, nil
}

// controllerFor is §3.1 of the reference: who builds a LoadBalancer Service.
func controllerFor(s *corev1.Service, lbcInstalled bool) (string, string) {
	typ := s.Annotations[annService+"aws-load-balancer-type"]
	class := ""
	if s.Spec.LoadBalancerClass != nil {
		class = *s.Spec.LoadBalancerClass
	}
	if lbcInstalled {
		switch {
		case class == "" || class == LBCClass:
			// The LBC's webhook sets the class on every new LoadBalancer Service.
			return LBC, ""
		default:
			return "", fmt.Sprintf("loadBalancerClass %q is owned by no controller; the Service stays pending, as in EKS", class)
		}
	}
	switch {
	case class != "":
		return "", fmt.Sprintf("loadBalancerClass %q is owned by no controller (the AWS Load Balancer Controller is not installed)", class)
	case typ == "nlb":
		return Legacy, ""
	case typ == "external" || typ == "nlb-ip":
		return "", "aws-load-balancer-type " + typ + " is left to the AWS Load Balancer Controller, which is not installed"
	}
	return "", "without the AWS Load Balancer Controller this would be a Classic Load Balancer, which the lab does not model"
}

func isALBIngress(in *netv1.Ingress) bool {
	if in.Spec.IngressClassName != nil {
		return *in.Spec.IngressClassName == "alb"
	}
	return in.Annotations["kubernetes.io/ingress.class"] == "alb"
}

type builder struct {
	t    *spec.Topology
	sps  []cluster.ServicePort
	used map[netip.Addr]bool
	pub  int
}

// ShortName is an LB's object name: kind-name when it fits the 10 bytes a
// router port name leaves, else kind and a hash.
func ShortName(kind, namespace, name string) string {
	n := kind + "-" + name
	if len(n) <= 10 && !strings.Contains(name, ".") {
		return n
	}
	h := sha1.Sum([]byte(namespace + "/" + name)) //nolint:gosec
	return kind + "-" + hex.EncodeToString(h[:])[:6]
}

// nodes places an LB's ENIs: one per AZ, in the subnet tagged for the
// scheme (kubernetes.io/role/elb for internet-facing, internal-elb for
// internal), at the lowest address spec.LBAddrs sets aside; internet-facing nodes get an
// Elastic IP from the documentation range.
func (b *builder) nodes(name, scheme string) ([]Node, error) {
	role := "internal-elb"
	if scheme == "internet-facing" {
		role = "elb"
	}
	var out []Node
	for _, az := range b.t.AZs {
		for _, s := range az.Subnets {
			if s.Role != role {
				continue
			}
			s.AZ = az.Name
			// The addresses spec set aside for load balancer nodes, which
			// no pod takes: the same whatever pods come and go.
			ip := netip.Addr{}
			for _, a := range b.t.LBAddrs(s) {
				if !b.used[a] {
					ip = a
					break
				}
			}
			if !ip.IsValid() {
				return nil, fmt.Errorf("subnet %s has no free address for %s", s.Name, name)
			}
			b.used[ip] = true
			n := Node{AZ: az.Name, Subnet: s, IP: ip, Index: len(out)}
			if scheme == "internet-facing" {
				if n.Public = b.nextPublic(); !n.Public.IsValid() {
					return nil, fmt.Errorf("no free Elastic IP left in %s.201-254 for %s", spec.PublicRange, name)
				}
			}
			out = append(out, n)
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no subnet has role %s (the kubernetes.io/role/%s tag the controller discovers subnets by)", role, role)
	}
	return out, nil
}

// nextPublic allocates Elastic IPs for load balancer nodes from the top of
// the public range (.201 to .254), away from the topology's own; the zero
// Addr when none is left.
func (b *builder) nextPublic() netip.Addr {
	taken := map[netip.Addr]bool{}
	if b.t.Internet != nil {
		for _, m := range b.t.Internet.PublicIPs {
			taken[m.Public] = true
		}
	}
	for b.pub < 54 {
		b.pub++
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(200 + b.pub)})
		if !taken[a] {
			return a
		}
	}
	return netip.Addr{}
}

// azOf is the AZ of a node or pod target.
func (b *builder) azOf(node string) string {
	n := b.t.Node(node)
	if n == nil {
		return ""
	}
	s, _ := b.t.Subnet(n.ENI(0).Subnet)
	return s.AZ
}

func parseBool(anno, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("annotation %s: %q is not true or false", anno, v)
}

// stringMap parses the annotations' "k1=v1,k2=v2" form. The controller
// splits each pair at its first '=' (aws-load-balancer-controller
// pkg/annotations/parser.go) and leaves the rest to the ELBv2 API, which
// refuses attribute keys it does not know and values it cannot parse; the
// lab refuses here what that API would: keys not of its a-z0-9_. form, and
// empty values or values with '=' (no attribute value holds one).
func stringMap(anno, v string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || !attrKey.MatchString(k) || val == "" || strings.Contains(val, "=") {
			return nil, fmt.Errorf("annotation %s: %q is not key=value (an attribute name and one value)", anno, strings.TrimSpace(kv))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("annotation %s: %s is given twice", anno, k)
		}
		out[k] = val
	}
	return out, nil
}

var attrKey = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)*$`)

// targetGroupAttrs parses a target-group-attributes annotation and refuses
// keys that are no ELBv2 target group attribute (the list of
// TargetGroupAttribute keys in the Elastic Load Balancing API reference,
// https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupAttribute.html).
func targetGroupAttrs(anno, v string) (map[string]string, error) {
	m, err := stringMap(anno, v)
	if err != nil {
		return nil, err
	}
	for k := range m {
		if !targetGroupAttrKeys[k] {
			return nil, fmt.Errorf("annotation %s: %q is not a target group attribute", anno, k)
		}
	}
	return m, nil
}

var targetGroupAttrKeys = map[string]bool{
	"deregistration_delay.timeout_seconds": true, "stickiness.enabled": true, "stickiness.type": true,
	"load_balancing.cross_zone.enabled":                                              true,
	"target_group_health.dns_failover.minimum_healthy_targets.count":                 true,
	"target_group_health.dns_failover.minimum_healthy_targets.percentage":            true,
	"target_group_health.unhealthy_state_routing.minimum_healthy_targets.count":      true,
	"target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage": true,
	"load_balancing.algorithm.type":                                                  true,
	"load_balancing.algorithm.anomaly_mitigation":                                    true,
	"slow_start.duration_seconds":                                                    true,
	"stickiness.app_cookie.cookie_name":                                              true,
	"stickiness.app_cookie.duration_seconds":                                         true,
	"stickiness.lb_cookie.duration_seconds":                                          true,
	"lambda.multi_value_headers.enabled":                                             true,
	"deregistration_delay.connection_termination.enabled":                            true,
	"preserve_client_ip.enabled":                                                     true,
	"proxy_protocol_v2.enabled":                                                      true,
	"target_health_state.unhealthy.connection_termination.enabled":                   true,
	"target_health_state.unhealthy.draining_interval_seconds":                        true,
	"target_failover.on_deregistration":                                              true,
	"target_failover.on_unhealthy":                                                   true,
}

func parseInt(anno, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("annotation %s: %q is not a number from %d to %d", anno, v, lo, hi)
	}
	return n, nil
}
