package walk

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

// Shapes the generated topologies found verdict bugs in. The nodes' and
// the load balancers' subnet is one, holding pods, a client and LB nodes.
const fixesLab = `
vpc: {cidr: 10.9.0.0/16}
azs:
  - name: us-east-1a
    subnets: [{name: a, cidr: 10.9.1.0/24, role: internal-elb}]
  - name: us-east-1b
    subnets: [{name: b, cidr: 10.9.2.0/24, role: internal-elb}]
nodes:
  - {name: n1, enis: [{subnet: a, ip: 10.9.1.10}, {subnet: a, ip: 10.9.1.11}]}
  - {name: n2, enis: [{subnet: a, ip: 10.9.1.20}]}
pods:
  - {name: solo, node: n1, eni: 1, ip: 10.9.1.31, labels: {app: solo}}
  - {name: web1, node: n2, eni: 0, ip: 10.9.1.41, labels: {app: web}}
hosts:
  - {name: client, subnet: a, ip: 10.9.1.100}
internet:
  hosts: [{name: inet1, ip: 198.51.100.20}]
walks:
  - {name: hairpin, from: solo, service: solo, port: 80}
  - {name: alb, from: client, loadBalancer: portal, path: /web}
  - {name: alb-default, from: client, loadBalancer: portal, path: /nothing}
  - {name: nlb-udp, from: client, loadBalancer: nlb, port: 9000}
  - {name: nlb-udp-proto, from: client, loadBalancer: nlb, port: 80, protocol: udp}
  - {name: nlb-inet, from: inet1, loadBalancer: nlb, port: 80}
  - {name: nlb-pip-onlink, from: client, loadBalancer: nlb-pip, port: 80}
---
apiVersion: v1
kind: Service
metadata: {name: solo}
spec: {selector: {app: solo}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: nlb
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: external
    service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: 8080, protocol: TCP}
    - {name: echo, port: 9000, targetPort: 9000, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata:
  name: nlb-pip
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: external
    service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip
    service.beta.kubernetes.io/aws-load-balancer-target-group-attributes: preserve_client_ip.enabled=true
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: portal
  annotations: {alb.ingress.kubernetes.io/target-type: ip}
spec:
  ingressClassName: alb
  defaultBackend: {service: {name: solo, port: {number: 80}}}
  rules:
    - http:
        paths:
          - {path: /web, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

func fixesTopo(t *testing.T) *spec.Topology {
	t.Helper()
	top, err := spec.Parse("fixes.yaml", "fixes", []byte(fixesLab))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// Class 8 of issue 10: a pod whose Service's only endpoint is itself. The
// KUBE-SEP chain masquerades traffic from the endpoint's own address, so
// the pod sees the node's primary IP (e2e seed 1 saw exactly that).
func TestClusterIPToItselfIsMasqueradedToTheNodesPrimaryIP(t *testing.T) {
	top := fixesTopo(t)
	e, err := Derive(top, *top.Walk("hairpin"), 40000, "solo")
	if err != nil {
		t.Fatal(err)
	}
	nodeIP := netip.MustParseAddr("10.9.1.10") // n1's eth0, though solo is on eth1
	podIP := netip.MustParseAddr("10.9.1.31")
	var req, rep []Hop
	for _, h := range e.Hops {
		if h.Leg == Request {
			req = append(req, h)
		} else {
			rep = append(rep, h)
		}
	}
	if len(req) != 4 || len(rep) != 4 {
		t.Fatalf("%d request and %d reply hops, want 4 and 4 (over the veth only)", len(req), len(rep))
	}
	if req[0].Src != podIP || req[1].Src != podIP {
		t.Errorf("before the node's NAT the source must be the pod: %s, %s", req[0].Src, req[1].Src)
	}
	for _, h := range req[2:] {
		if h.Src != nodeIP || h.SrcPort != 0 {
			t.Errorf("request %s: source %s:%d, want the node's %s, port unchecked (--random-fully)", h.Point, h.Src, h.SrcPort, nodeIP)
		}
	}
	for _, h := range rep[:2] {
		if h.Dst != nodeIP {
			t.Errorf("reply %s: destination %s, want the node's %s", h.Point, h.Dst, nodeIP)
		}
	}
	if rep[3].Dst != podIP || rep[3].Src.String() != "172.20.0.100" {
		t.Errorf("the pod must get the answer from the VIP: %s > %s", rep[3].Src, rep[3].Dst)
	}
}

// Class 2 of issue 10: an LB node whose peer sits in its own subnet. The
// plan routes everything the node sends by its ENI's table (default via
// the router, no on-link route); the walk must expect the same, or the
// walk fails on working traffic (e2e seed 2's ALB walks did).
func TestLBNodeSendsThroughTheRouterAsThePlanRoutesIt(t *testing.T) {
	top := fixesTopo(t)
	e, err := Derive(top, *top.Walk("alb"), 40000, "", Picks{Target: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Build(top, "fx")
	ns := p.NS(e.LB.Name)
	for _, r := range ns.Routes {
		if r.Table == 10+e.LBNode.Index && r.Dst.Bits() != 0 {
			t.Fatalf("the plan now has an on-link route %s in the LB's table; update the walk model with it", r.Dst)
		}
	}
	router := spec.RouterMAC(e.LBNode.Subnet.Name)
	n := 0
	for _, h := range e.Hops {
		if h.Point.Object == e.LB.Name && h.Dir == Out {
			n++
			if h.DstMAC.String() != router.String() {
				t.Errorf("%s %s out to %s: dst MAC %s, want the router's %s", h.Leg, h.Point, h.Dst, h.DstMAC, router)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d hops leave the ALB node, want 2 (to the pod, back to the client)", n)
	}
}

// Class 6 of issue 10: an Ingress's defaultBackend gets the paths no rule
// matches; it was ignored and the walk "passed" on the ALB's 404.
func TestALBDefaultBackendGetsUnmatchedPaths(t *testing.T) {
	top := fixesTopo(t)
	_, l, _, _, err := LBOf(top, *top.Walk("alb-default"))
	if err != nil {
		t.Fatal(err)
	}
	r := l.Match("/nothing")
	if r == nil || r != l.Default || r.Service != "solo" {
		t.Fatalf("Match(/nothing) = %+v, want the default backend solo", r)
	}
	if l.Match("/web/x").Service != "web" {
		t.Error("a matching rule must still win over the default")
	}
	e, err := Derive(top, *top.Walk("alb-default"), 40000, "")
	if err != nil {
		t.Fatal(err)
	}
	if e.Endpoint == nil || e.Endpoint.Object != "solo" {
		t.Fatalf("the unmatched path must reach the default backend's pod, got %+v", e.Endpoint)
	}
	pts, _, _, err := LBCandidates(top, *top.Walk("alb-default"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pts {
		found = found || p.Object == "solo"
	}
	if !found {
		t.Error("the default backend's pod is not captured")
	}
}

// Class 5 of issue 10: load balancer walks the format accepts but the
// engine cannot run are errors that name the walk's field and line.
func TestLBWalksTheEngineCannotRunAreRejected(t *testing.T) {
	top := fixesTopo(t)
	for name, want := range map[string]string{
		"nlb-udp":       "walks[3].port (line ",
		"nlb-udp-proto": "walks[4].protocol (line ",
		"nlb-inet":      "walks[5].dnsName (line ",
		// e2e seed 23: web1 on n2's eth0 answers the client on-link.
		"nlb-pip-onlink": "walks[6].from (line ",
	} {
		_, _, _, _, err := LBOf(top, *top.Walk(name))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("walk %s: error %v, want one naming %s", name, err, want)
		}
	}
	if _, _, _, _, err := LBOf(top, *top.Walk("alb")); err != nil {
		t.Errorf("a TCP walk from a VPC host is fine: %v", err)
	}
}

// Class 5: an ALB with instance targets (the controller's default) is
// refused; the lab's ALB proxies to pods only.
func TestALBInstanceTargetsAreRejected(t *testing.T) {
	doc := strings.Replace(fixesLab, "annotations: {alb.ingress.kubernetes.io/target-type: ip}", "annotations: {}", 1)
	top, err := spec.Parse("fixes.yaml", "fixes", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = lb.Build(top)
	if err == nil || !strings.Contains(err.Error(), "target-type: instance") || !strings.Contains(err.Error(), "Ingress default/portal") {
		t.Errorf("lb.Build: %v, want the Ingress's target-type: instance refused", err)
	}
}
