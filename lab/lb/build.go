package lb

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"

	"github.com/labctl/labctl/lab/cluster"
)

// Annotation prefixes.
const (
	annService = "service.beta.kubernetes.io/"
	annIngress = "alb.ingress.kubernetes.io/"
)

// nlb builds a Service's NLB as its controller configures it (reference
// aws-lb.md §1.2, §1.3, §3.2, §4).
func (b *builder) nlb(s *corev1.Service, ctrl string) (*LoadBalancer, error) {
	a := s.Annotations
	get := func(k string) (string, bool) { v, ok := a[annService+k]; return v, ok }
	l := &LoadBalancer{Name: ShortName(NLB, s.Namespace, s.Name), Kind: NLB, Controller: ctrl,
		Owner: "Service " + s.Namespace + "/" + s.Name, Scheme: "internal"}
	if ctrl == Legacy {
		l.Scheme = "internet-facing"
		if v, ok := get("aws-load-balancer-internal"); ok && v != "false" {
			l.Scheme = "internal"
		}
	}
	if v, ok := get("aws-load-balancer-scheme"); ok {
		if v != "internal" && v != "internet-facing" {
			return nil, fmt.Errorf("annotation %saws-load-balancer-scheme: %q is not internal or internet-facing", annService, v)
		}
		l.Scheme = v
	}
	targetType := TargetInstance
	if v, ok := get("aws-load-balancer-nlb-target-type"); ok && ctrl == LBC {
		if v != TargetInstance && v != TargetIP {
			return nil, fmt.Errorf("annotation %saws-load-balancer-nlb-target-type: %q is not instance or ip", annService, v)
		}
		targetType = v
	}
	if v, _ := get("aws-load-balancer-type"); v == "nlb-ip" {
		targetType = TargetIP
	}
	attrs, err := stringMap(annService+"aws-load-balancer-attributes", a[annService+"aws-load-balancer-attributes"])
	if err != nil {
		return nil, err
	}
	if v, ok := attrs["load_balancing.cross_zone.enabled"]; ok {
		if l.CrossZone, err = parseBool(annService+"aws-load-balancer-attributes load_balancing.cross_zone.enabled", v); err != nil {
			return nil, err
		}
	}
	tgAttrs, err := targetGroupAttrs(annService+"aws-load-balancer-target-group-attributes", a[annService+"aws-load-balancer-target-group-attributes"])
	if err != nil {
		return nil, err
	}
	health, err := parseGroupHealth(annService+"aws-load-balancer-target-group-attributes", tgAttrs)
	if err != nil {
		return nil, err
	}
	local := s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	hc, err := b.nlbHealthCheck(s, ctrl, targetType, local)
	if err != nil {
		return nil, err
	}
	if l.Nodes, err = b.nodes(l.Name, l.Scheme); err != nil {
		return nil, err
	}
	for _, p := range s.Spec.Ports {
		tg := &TargetGroup{Name: fmt.Sprintf("%s-%d", l.Name, p.Port), TargetType: targetType, CrossZone: l.CrossZone,
			Health: health, HealthCheck: hc, PreserveClientIP: targetType == TargetInstance || p.Protocol == corev1.ProtocolUDP}
		if v, ok := tgAttrs["preserve_client_ip.enabled"]; ok {
			on, err := parseBool(annService+"aws-load-balancer-target-group-attributes preserve_client_ip.enabled", v)
			if err != nil {
				return nil, err
			}
			if !on && p.Protocol == corev1.ProtocolUDP && targetType == TargetIP {
				return nil, fmt.Errorf("preserve_client_ip.enabled=false: client IP preservation cannot be disabled for UDP ip targets")
			}
			tg.PreserveClientIP = on
		}
		if targetType == TargetInstance {
			tg.Port = int(p.NodePort)
			for _, n := range b.t.Nodes {
				tg.Targets = append(tg.Targets, Target{Object: n.Name, IP: n.ENI(0).IP, Port: tg.Port, AZ: b.azOf(n.Name)})
			}
		} else {
			tg.Targets = b.podTargets(s, p)
			if len(tg.Targets) > 0 {
				tg.Port = tg.Targets[0].Port
			}
		}
		l.Listeners = append(l.Listeners, Listener{Port: int(p.Port), Protocol: string(p.Protocol), Group: tg})
	}
	return l, nil
}

// podTargets are a Service port's endpoints as ip targets.
func (b *builder) podTargets(s *corev1.Service, p corev1.ServicePort) []Target {
	var out []Target
	for _, sp := range b.sps {
		if sp.Service != s || sp.Port.Port != p.Port || sp.Port.Protocol != p.Protocol {
			continue
		}
		for _, e := range sp.Endpoints {
			// The controller registers a pod once it is ready and
			// deregisters it as it starts terminating.
			if !e.Ready() {
				continue
			}
			out = append(out, Target{Object: e.Pod, IP: e.IP, Port: e.Port, AZ: b.azOf(e.Node)})
		}
	}
	return out
}

// nlbHealthCheck is §1.3's table: the LBC's defaults (TCP traffic-port,
// 10 s, 10 s, 3/3), its instance+Local case (HTTP healthCheckNodePort
// /healthz, 10 s, 6 s, 2/2), the legacy controller's (TCP, 30 s, 3/3), then
// the health check annotations.
func (b *builder) nlbHealthCheck(s *corev1.Service, ctrl, targetType string, local bool) (HealthCheck, error) {
	hc := HealthCheck{Protocol: "TCP", Interval: 10 * time.Second, Timeout: 10 * time.Second, Healthy: 3, Unhealthy: 3,
		Matcher: "200-399", Path: "/"}
	if ctrl == Legacy {
		hc.Interval = 30 * time.Second
	}
	if local && (targetType == TargetInstance || ctrl == Legacy) {
		hc = HealthCheck{Protocol: "HTTP", Port: int(s.Spec.HealthCheckNodePort), Path: "/healthz",
			Interval: 10 * time.Second, Timeout: 6 * time.Second, Healthy: 2, Unhealthy: 2, Matcher: "200-399"}
	}
	a := s.Annotations
	for _, k := range []string{"protocol", "port", "path", "healthy-threshold", "unhealthy-threshold", "interval", "timeout", "success-codes"} {
		anno := annService + "aws-load-balancer-healthcheck-" + k
		v, ok := a[anno]
		if !ok {
			continue
		}
		var err error
		switch k {
		case "protocol":
			switch strings.ToUpper(v) {
			case "TCP", "HTTP":
				hc.Protocol = strings.ToUpper(v)
			default:
				err = fmt.Errorf("annotation %s: %q is not tcp or http (https is not modelled)", anno, v)
			}
		case "port":
			if v == "traffic-port" {
				hc.Port = 0
			} else {
				hc.Port, err = parseInt(anno, v, 1, 65535)
			}
		case "path":
			hc.Path = v
		case "healthy-threshold":
			hc.Healthy, err = parseInt(anno, v, 2, 10)
		case "unhealthy-threshold":
			hc.Unhealthy, err = parseInt(anno, v, 2, 10)
		case "interval":
			var n int
			n, err = parseInt(anno, v, 5, 300)
			hc.Interval = time.Duration(n) * time.Second
		case "timeout":
			var n int
			n, err = parseInt(anno, v, 2, 120)
			hc.Timeout = time.Duration(n) * time.Second
		case "success-codes":
			hc.Matcher = v
		}
		if err != nil {
			return hc, err
		}
	}
	return hc, nil
}

// alb builds an Ingress's ALB as the LBC does (reference §2.3, §2.5, §3.3).
func (b *builder) alb(in *netv1.Ingress) (*LoadBalancer, error) {
	a := in.Annotations
	l := &LoadBalancer{Name: ShortName(ALB, in.Namespace, in.Name), Kind: ALB, Controller: LBC,
		Owner: "Ingress " + in.Namespace + "/" + in.Name, Scheme: "internal", CrossZone: true}
	if v, ok := a[annIngress+"scheme"]; ok {
		if v != "internal" && v != "internet-facing" {
			return nil, fmt.Errorf("annotation %sscheme: %q is not internal or internet-facing", annIngress, v)
		}
		l.Scheme = v
	}
	targetType := TargetInstance
	if v, ok := a[annIngress+"target-type"]; ok {
		if v != TargetInstance && v != TargetIP {
			return nil, fmt.Errorf("annotation %starget-type: %q is not instance or ip", annIngress, v)
		}
		targetType = v
	}
	if targetType == TargetInstance {
		// The lab's ALB proxies to pods only; a walk through a node's
		// NodePort would be derived for a path the ALB never takes.
		return nil, fmt.Errorf("annotation %starget-type: instance (the controller's default when the annotation is absent) "+
			"is not modelled: the lab's ALB sends to pods only; set %starget-type: ip", annIngress, annIngress)
	}
	tgAttrs, err := targetGroupAttrs(annIngress+"target-group-attributes", a[annIngress+"target-group-attributes"])
	if err != nil {
		return nil, err
	}
	crossZone := true
	if v, ok := tgAttrs["load_balancing.cross_zone.enabled"]; ok {
		if crossZone, err = parseBool(annIngress+"target-group-attributes load_balancing.cross_zone.enabled", v); err != nil {
			return nil, err
		}
	}
	health, err := parseGroupHealth(annIngress+"target-group-attributes", tgAttrs)
	if err != nil {
		return nil, err
	}
	hc := HealthCheck{Protocol: "HTTP", Path: "/", Interval: 15 * time.Second, Timeout: 5 * time.Second, Healthy: 2,
		Unhealthy: 2, Matcher: "200"}
	if v, ok := a[annIngress+"healthcheck-path"]; ok {
		hc.Path = v
	}
	for k, p := range map[string]*int{"healthy-threshold-count": &hc.Healthy, "unhealthy-threshold-count": &hc.Unhealthy} {
		if v, ok := a[annIngress+k]; ok {
			if *p, err = parseInt(annIngress+k, v, 2, 10); err != nil {
				return nil, err
			}
		}
	}
	if l.Nodes, err = b.nodes(l.Name, l.Scheme); err != nil {
		return nil, err
	}
	if len(l.Nodes) < 2 {
		// CreateLoadBalancer refuses an application load balancer with
		// subnets in fewer than two AZs (ELBv2 API reference, Subnets).
		return nil, fmt.Errorf("an ALB needs subnets in at least two AZs; only %s has a subnet with role %s",
			l.Nodes[0].AZ, l.Nodes[0].Subnet.Role)
	}
	groups := map[string]*TargetGroup{}
	group := func(svcName string, port netv1.ServiceBackendPort, where string) (*TargetGroup, error) {
		s := cluster.ServiceByName(b.t, in.Namespace+"/"+svcName)
		if s == nil {
			return nil, fmt.Errorf("%s: backend Service %q does not exist in namespace %s", where, svcName, in.Namespace)
		}
		var sp *corev1.ServicePort
		for i := range s.Spec.Ports {
			p := &s.Spec.Ports[i]
			if (port.Name != "" && p.Name == port.Name) || (port.Name == "" && p.Port == port.Number) {
				sp = p
			}
		}
		if sp == nil {
			return nil, fmt.Errorf("%s: Service %s has no port %s", where, svcName, portString(port))
		}
		if targetType == TargetInstance && sp.NodePort == 0 {
			return nil, fmt.Errorf("%s: target-type instance needs a NodePort, but Service %s is %s", where, svcName, s.Spec.Type)
		}
		key := fmt.Sprintf("%s:%d", svcName, sp.Port)
		if g := groups[key]; g != nil {
			return g, nil
		}
		g := &TargetGroup{Name: fmt.Sprintf("%s-%s-%d", l.Name, svcName, sp.Port), TargetType: targetType,
			CrossZone: crossZone, Health: health, HealthCheck: hc}
		if targetType == TargetIP {
			g.Targets = b.podTargets(s, *sp)
		} else {
			for _, n := range b.t.Nodes {
				g.Targets = append(g.Targets, Target{Object: n.Name, IP: n.ENI(0).IP, Port: int(sp.NodePort), AZ: b.azOf(n.Name)})
			}
		}
		g.Port = int(sp.NodePort)
		if len(g.Targets) > 0 {
			g.Port = g.Targets[0].Port
		}
		groups[key] = g
		return g, nil
	}
	for i, r := range in.Spec.Rules {
		if r.Host != "" {
			return nil, fmt.Errorf("spec.rules[%d].host: host rules are not modelled (paths are)", i)
		}
		if r.HTTP == nil {
			continue
		}
		var exact, prefix, impl []Rule
		for j, p := range r.HTTP.Paths {
			where := fmt.Sprintf("spec.rules[%d].http.paths[%d]", i, j)
			if p.Backend.Service == nil {
				return nil, fmt.Errorf("%s: only Service backends are modelled", where)
			}
			g, err := group(p.Backend.Service.Name, p.Backend.Service.Port, where)
			if err != nil {
				return nil, err
			}
			rule := Rule{Group: g, Service: p.Backend.Service.Name}
			pt := netv1.PathTypeImplementationSpecific
			if p.PathType != nil {
				pt = *p.PathType
			}
			switch pt {
			case netv1.PathTypeExact:
				rule.Paths, rule.Exact = []string{p.Path}, true
				exact = append(exact, rule)
			case netv1.PathTypePrefix:
				rule.Paths = prefixPatterns(p.Path)
				prefix = append(prefix, rule)
			default:
				rule.Paths = []string{p.Path}
				impl = append(impl, rule)
			}
		}
		sort.SliceStable(prefix, func(x, y int) bool { return len(prefix[x].Paths[0]) > len(prefix[y].Paths[0]) })
		for _, rule := range append(append(exact, prefix...), impl...) {
			rule.Priority = len(l.Rules) + 1
			l.Rules = append(l.Rules, rule)
		}
	}
	if d := in.Spec.DefaultBackend; d != nil {
		// The listener's default action forwards to the default backend
		// instead of the fixed 404 (aws-load-balancer-controller
		// pkg/ingress/model_build_listener.go, model_build_actions.go).
		if d.Service == nil {
			return nil, fmt.Errorf("spec.defaultBackend: only a Service backend is modelled")
		}
		g, err := group(d.Service.Name, d.Service.Port, "spec.defaultBackend")
		if err != nil {
			return nil, err
		}
		l.Default = &Rule{Group: g, Service: d.Service.Name, Paths: []string{"/*"}}
	}
	l.Listeners = []Listener{{Port: 80, Protocol: "HTTP"}}
	return l, nil
}

// prefixPatterns is the LBC's translation of a Prefix path: /foo and
// /foo/ give /foo and /foo/*; / gives /*.
func prefixPatterns(p string) []string {
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return []string{"/*"}
	}
	return []string{p, p + "/*"}
}

func portString(p netv1.ServiceBackendPort) string {
	if p.Name != "" {
		return strconv.Quote(p.Name)
	}
	return strconv.Itoa(int(p.Number))
}

// Match is an ALB's rule choice for a request path: the first rule in
// priority order whose pattern matches (case-sensitive; * matches anything,
// ? one character), else the default action: the Ingress's defaultBackend
// (Default), or nil for the fixed 404.
func (l *LoadBalancer) Match(path string) *Rule {
	for i := range l.Rules {
		for _, pat := range l.Rules[i].Paths {
			if globMatch(pat, path) {
				return &l.Rules[i]
			}
		}
	}
	return l.Default
}

// globMatch matches ALB path patterns.
func globMatch(pat, s string) bool {
	if pat == "" {
		return s == ""
	}
	switch pat[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(pat[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(pat[1:], s[1:])
	}
	return s != "" && s[0] == pat[0] && globMatch(pat[1:], s[1:])
}

// Eligible are the targets one LB node may send a new flow to: the healthy
// ones of those available to it (its AZ's, or all with cross-zone on). When
// the healthy ones fall below the group's routing failover threshold, the
// node sends to every target available to it, unhealthy ones included (per
// zone fail-open); when no target in any zone is healthy, the load
// balancer fails open to every target of every zone. A node with no target
// available while others are healthy has none (an ALB answers 503, an NLB
// drops; its zone is out of DNS by then).
func (g *TargetGroup) Eligible(az string, healthy func(Target) bool) []Target {
	anyHealthy := false
	for _, t := range g.Targets {
		anyHealthy = anyHealthy || healthy(t)
	}
	if !anyHealthy {
		return g.Targets
	}
	avail := g.Available(az)
	var ok []Target
	for _, t := range avail {
		if healthy(t) {
			ok = append(ok, t)
		}
	}
	if below(len(ok), len(avail), g.Health.routingCount(), g.Health.RoutingPercent) {
		return avail
	}
	return ok
}

// Groups are the load balancer's target groups, each once: the listeners'
// (NLB), then the rules' (ALB).
func (l *LoadBalancer) Groups() []*TargetGroup {
	seen := map[*TargetGroup]bool{}
	var out []*TargetGroup
	add := func(g *TargetGroup) {
		if g != nil && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	for _, li := range l.Listeners {
		add(li.Group)
	}
	for _, ru := range l.Rules {
		add(ru.Group)
	}
	if l.Default != nil {
		add(l.Default.Group)
	}
	return out
}

// InDNS are the nodes whose addresses the load balancer's DNS name answers,
// given each target's health: a node leaves DNS when any of its target
// groups has fewer healthy targets available to it than the group's DNS
// failover threshold (by default: none), since "DNS failover ... affects
// all target groups associated with the load balancer" (target group
// health page, GroupHealth). With cross-zone on, every zone's
// targets count, so the node stays while any is healthy.
//
// When every node would leave, all are answered: "if all load balancer
// zones are considered unhealthy, the load balancer sends traffic to all
// zones". out says, by AZ, why a node is left out.
func (l *LoadBalancer) InDNS(healthy func(*TargetGroup, Target) bool) (in []Node, out map[string]string) {
	out = map[string]string{}
	for _, n := range l.Nodes {
		why := ""
		for _, g := range l.Groups() {
			if failed, reason := g.DNSFailed(n.AZ, func(t Target) bool { return healthy(g, t) }); failed && why == "" {
				why = reason
			}
		}
		if why == "" {
			in = append(in, n)
		} else {
			out[n.AZ] = why
		}
	}
	if len(in) == 0 {
		return l.Nodes, map[string]string{}
	}
	return in, out
}

// NodeInAZ is the load balancer node a client in az uses (the first node
// when az is empty). A walk naming an AZ the load balancer has no node in
// is an error, not a silent fall back to another AZ; walk.LBOf should pick
// its node with this.
func (l *LoadBalancer) NodeInAZ(az string) (Node, error) {
	if len(l.Nodes) == 0 {
		return Node{}, fmt.Errorf("%s has no nodes", l.Owner)
	}
	if az == "" {
		return l.Nodes[0], nil
	}
	azs := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		if n.AZ == az {
			return n, nil
		}
		azs[i] = n.AZ
	}
	return Node{}, fmt.Errorf("%s has no node in AZ %s (its nodes are in %s)", l.Owner, az, strings.Join(azs, ", "))
}
