package spec

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// hardLab has two AZs, a node per AZ, an internet with one DNS record and
// room for walks; the cases below break one thing each.
const hardLab = `name: h
vpc: {cidr: 192.168.0.0/16}
azs:
  - name: az1
    subnets: [{name: a, cidr: 192.168.1.0/24}]
  - name: az2
    subnets: [{name: b, cidr: 192.168.2.0/24}]
nodes:
  - {name: n1, enis: [{subnet: a, ip: 192.168.1.50}]}
  - {name: n2, enis: [{subnet: b, ip: 192.168.2.50}]}
hosts:
  - {name: c1, subnet: a, ip: 192.168.1.10}
internet:
  hosts: [{name: web, ip: 198.51.100.20}]
  dns: {name: r53, ip: 198.51.100.53, records: [{name: portal.example.com, alias: web}]}
walks:
  - {name: W1, from: c1, to: web}
`

// hardDeploy is a Deployment and its Service; line 2 of the manifests.
const hardDeploy = `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
`

// lineOf is the 1-based line of the first occurrence of s in y.
func lineOf(t *testing.T, y, s string) int {
	t.Helper()
	i := strings.Index(y, s)
	if i < 0 {
		t.Fatalf("%q not in the test topology", s)
	}
	return strings.Count(y[:i], "\n") + 1
}

func TestHardLabBaseIsValid(t *testing.T) {
	if _, err := parse(t, hardLab+hardDeploy); err != nil {
		t.Fatal(err)
	}
}

// TestBadInputIsRejectedWithItsPlace is issue 11's list of inputs that
// panicked, failed late or were accepted: each must fail validation with an
// error that names the problem, the object or path, and the line.
func TestBadInputIsRejectedWithItsPlace(t *testing.T) {
	rep := func(y, old, new string) string {
		t.Helper()
		if !strings.Contains(y, old) {
			t.Fatalf("%q not in the test topology", old)
		}
		return strings.Replace(y, old, new, 1)
	}
	base := hardLab + hardDeploy
	noNodes := rep(rep(base, "  - {name: n1, enis: [{subnet: a, ip: 192.168.1.50}]}\n", ""),
		"  - {name: n2, enis: [{subnet: b, ip: 192.168.2.50}]}\n", "")
	noNodes = rep(noNodes, "nodes:\n", "")
	cases := []struct {
		name  string
		y     string
		wants []string // the last one may be a func of y: the line
		line  string   // substring whose line the error must name
	}{
		{"a Service and no nodes (was a divide by zero)", noNodes,
			[]string{"Deployment default/web", "no nodes to place 2 replicas"}, "apiVersion: apps/v1"},
		{"containerPort 99999", rep(base, "containerPort: 80", "containerPort: 99999"),
			[]string{"Deployment default/web", "containers[0].ports[0].containerPort: 99999 is outside 1..65535"}, "apiVersion: apps/v1"},
		{"ENI annotation not a number", rep(base, "metadata: {name: web}\nspec:\n  replicas", "metadata: {name: web, annotations: {labctl.dev/eni: banana}}\nspec:\n  replicas"),
			[]string{"Deployment default/web", `labctl.dev/eni: "banana" is not an ENI device index`}, "apiVersion: apps/v1"},
		{"ENI annotation -1", rep(base, "metadata: {name: web}\nspec:\n  replicas", "metadata: {name: web, annotations: {labctl.dev/eni: \"-1\"}}\nspec:\n  replicas"),
			[]string{"Deployment default/web", `labctl.dev/eni: "-1"`}, "apiVersion: apps/v1"},
		{"ENI annotation names a missing ENI", rep(base, "metadata: {name: web}\nspec:\n  replicas", "metadata: {name: web, annotations: {labctl.dev/eni: \"2\"}}\nspec:\n  replicas"),
			[]string{"Deployment default/web", "node n1 has no ENI with device index 2"}, "apiVersion: apps/v1"},
		{"negative replicas", rep(base, "replicas: 2", "replicas: -3"),
			[]string{"Deployment default/web", "spec.replicas: -3 is outside"}, "apiVersion: apps/v1"},
		{"unknown node in labctl.dev/nodes", rep(base, "metadata: {name: web}\nspec:\n  replicas", "metadata: {name: web, annotations: {labctl.dev/nodes: \"n1,ghost\"}}\nspec:\n  replicas"),
			[]string{"Deployment default/web", `annotation labctl.dev/nodes: unknown node "ghost"`}, "apiVersion: apps/v1"},
		{"empty entry in labctl.dev/nodes", rep(base, "metadata: {name: web}\nspec:\n  replicas", "metadata: {name: web, annotations: {labctl.dev/nodes: \"n1,\"}}\nspec:\n  replicas"),
			[]string{"Deployment default/web", `unknown node ""`}, "apiVersion: apps/v1"},
		{"unknown nodeName of a Pod", base + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec: {nodeName: ghost, containers: [{name: c}]}\n",
			[]string{"Pod default/solo", `spec.nodeName: unknown node "ghost"`}, "apiVersion: v1\nkind: Pod"},
		{"a Pod's IP annotation is outside its subnet", base + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: solo, annotations: {labctl.dev/ip: 192.168.9.9}}\nspec: {nodeName: n1, containers: [{name: c}]}\n",
			[]string{"Pod default/solo pod solo ip", "outside subnet \"a\""}, "apiVersion: v1\nkind: Pod"},
		{"walk connections -5", rep(base, "  - {name: W1, from: c1, to: web}\n", "  - {name: W1, from: c1, to: web}\n  - {name: S1, kind: spread, from: c1, service: web, port: 80, connections: -5}\n"),
			[]string{"walks[1].connections", "-5 connections"}, "name: S1"},
		{"walk connections 1e9", rep(base, "  - {name: W1, from: c1, to: web}\n", "  - {name: W1, from: c1, to: web}\n  - {name: S1, kind: spread, from: c1, service: web, port: 80, connections: 1e9}\n"),
			[]string{"walks[1].connections", "1000000000 connections"}, "name: S1"},
		{"walk az unknown", rep(base, "  - {name: W1, from: c1, to: web}\n", "  - {name: W1, from: c1, to: web}\n  - {name: L1, from: c1, loadBalancer: web, az: mars-1a}\n"),
			[]string{"walks[1].az", `unknown AZ "mars-1a"`}, "name: L1"},
		{"walk dnsName unknown", rep(base, "  - {name: W1, from: c1, to: web}\n", "  - {name: W1, from: c1, to: web}\n  - {name: D1, from: web, loadBalancer: web, dnsName: nowhere.example.com}\n"),
			[]string{"walks[1].dnsName", `"nowhere.example.com" is no record`}, "name: D1"},
		{"manifest document is a list", base + "---\n- a\n- b\n",
			[]string{"must be a mapping", "not a list"}, "- a"},
		{"manifest document is a scalar", base + "---\nhello\n",
			[]string{"must be a mapping", "not a scalar"}, "hello"},
		{"service CIDR /28", rep(base, "vpc: {cidr: 192.168.0.0/16}", "vpc: {cidr: 192.168.0.0/16, serviceCIDR: 10.100.0.0/28}"),
			[]string{"vpc.serviceCIDR", "between /12 and /24"}, "vpc:"},
		{"service CIDR in link-local", rep(base, "vpc: {cidr: 192.168.0.0/16}", "vpc: {cidr: 192.168.0.0/16, serviceCIDR: 169.254.0.0/16}"),
			[]string{"vpc.serviceCIDR", "overlaps the link-local 169.254.0.0/16"}, "vpc:"},
		{"service CIDR on the lab's internet", rep(base, "vpc: {cidr: 192.168.0.0/16}", "vpc: {cidr: 192.168.0.0/16, serviceCIDR: 198.51.100.0/24}"),
			[]string{"vpc.serviceCIDR", "overlaps the lab's internet"}, "vpc:"},
		{"service CIDR overlapping the VPC", rep(base, "vpc: {cidr: 192.168.0.0/16}", "vpc: {cidr: 192.168.0.0/16, serviceCIDR: 192.168.0.0/20}"),
			[]string{"vpc.serviceCIDR", "overlaps the VPC CIDR"}, "vpc:"},
		{"an ENI in another AZ than its instance", rep(base, "{name: n1, enis: [{subnet: a, ip: 192.168.1.50}]}", "{name: n1, enis: [{subnet: a, ip: 192.168.1.50}, {subnet: b, ip: 192.168.2.60}]}"),
			[]string{"nodes[0].enis[1].subnet", "an ENI must be in its instance's AZ"}, "name: n1"},
		{"one /28 delegated to two nodes", rep(rep(rep(base, "vpc: {cidr: 192.168.0.0/16}", "vpc: {cidr: 192.168.0.0/16, prefixDelegation: true}"),
			"{subnet: a, ip: 192.168.1.50}", "{subnet: a, ip: 192.168.1.50, prefixes: [192.168.1.64/28]}"),
			"  - {name: n2, enis: [{subnet: b, ip: 192.168.2.50}]}\n", "  - {name: n2, enis: [{subnet: b, ip: 192.168.2.50}]}\n  - {name: n3, enis: [{subnet: a, ip: 192.168.1.51, prefixes: [192.168.1.64/28]}]}\n"),
			[]string{"nodes[2].enis[0].prefixes[0]", "already delegated to node n1 eth0"}, "name: n3"},
		{"an address inside another ENI's prefix", rep(rep(base, "vpc: {cidr: 192.168.0.0/16}", "vpc: {cidr: 192.168.0.0/16, prefixDelegation: true}"),
			"{name: c1, subnet: a, ip: 192.168.1.10}", "{name: c1, subnet: a, ip: 192.168.1.70}\n  - {name: c2, subnet: a, ip: 192.168.1.11}") +
			"", []string{}, ""}, // replaced below
		{"a lab pod's port out of range", rep(base, "hosts:\n", "pods:\n  - {name: p1, node: n1, ip: 192.168.1.51, ports: [{port: 70000}]}\nhosts:\n"),
			[]string{"pods[0].ports[0].port", "70000 is outside 1..65535"}, "name: p1"},
		{"a lab pod's port protocol", rep(base, "hosts:\n", "pods:\n  - {name: p1, node: n1, ip: 192.168.1.51, ports: [{port: 80, protocol: sctp}]}\nhosts:\n"),
			[]string{"pods[0].ports[0].protocol", `"sctp"`}, "name: p1"},
		{"via without a service", rep(base, "{name: W1, from: c1, to: web}", "{name: W1, from: c1, to: web, via: n1}"),
			[]string{"walks[0].via", "has no service"}, "name: W1"},
		{"query on a flow walk", rep(base, "{name: W1, from: c1, to: web}", "{name: W1, from: c1, to: web, query: web}"),
			[]string{"walks[0].query", "dns walks"}, "name: W1"},
		{"an icmp walk with a port", rep(base, "{name: W1, from: c1, to: web}", "{name: W1, from: c1, to: web, port: 80}"),
			[]string{"walks[0].port", "icmp walk has no port"}, "name: W1"},
		{"a DNS record listed twice", rep(base, "records: [{name: portal.example.com, alias: web}]", "records: [{name: portal.example.com, alias: web}, {name: Portal.example.com., alias: web}]"),
			[]string{"internet.dns.records[1].name", "listed twice"}, "records:"},
		{"a connections count on a flow walk", rep(base, "{name: W1, from: c1, to: web}", "{name: W1, from: c1, to: web, connections: 5}"),
			[]string{"walks[0].connections", "spread and churn"}, "name: W1"},
	}
	// The last case needs n1 to hold the prefix the host sits in.
	var last *struct {
		name  string
		y     string
		wants []string
		line  string
	}
	for i := range cases {
		if cases[i].name == "an address inside another ENI's prefix" {
			last = &cases[i]
		}
	}
	last.y = rep(last.y, "{subnet: a, ip: 192.168.1.50}", "{subnet: a, ip: 192.168.1.50, prefixes: [192.168.1.64/28]}")
	last.wants = []string{"hosts[0].ip", "192.168.1.70 is inside prefix 192.168.1.64/28, delegated to node n1 eth0"}
	last.line = "name: c1"

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.y)
			if err == nil {
				t.Fatalf("accepted; want an error with %q", c.wants)
			}
			msg := err.Error()
			wants := append(c.wants, fmt.Sprintf("t.yaml:%d:", lineOf(t, c.y, c.line)))
			for _, w := range wants {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			if !strings.Contains(c.y, "\npods:") && strings.Contains(msg, "pods[") {
				t.Errorf("error names pods[N], which the file does not have:\n%s", msg)
			}
		})
	}
}

func TestAManifestObjectDefinedTwiceIsRejected(t *testing.T) {
	y := hardLab + hardDeploy + hardDeploy[strings.Index(hardDeploy, "---\napiVersion: v1"):]
	_, err := parse(t, y)
	want := fmt.Sprintf("t.yaml:%d: Service default/web is defined twice (first at line %d)",
		strings.Count(y[:strings.LastIndex(y, "apiVersion: v1")], "\n")+1, lineOf(t, y, "apiVersion: v1"))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestPrefixDelegationPlacesManifestPodsInTheNodesPrefixes is issue 11's
// "pods[1]" failure: with prefix delegation, CoreDNS and Deployment
// replicas take /32s from their node's delegated /28s, lowest first, as
// ipamd does, so the shipped prefix topology plus manifests validates.
func TestPrefixDelegationPlacesManifestPodsInTheNodesPrefixes(t *testing.T) {
	src, err := os.ReadFile("../../topologies/prefix-delegation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(src) + strings.Replace(hardDeploy, "replicas: 2", "replicas: 3", 1)
	top, err := Parse("pd.yaml", "pd", []byte(y))
	if err != nil {
		t.Fatalf("prefix delegation with a Deployment and a Service: %v", err)
	}
	n := 0
	for _, p := range top.Pods {
		if p.Manifest == "" {
			continue
		}
		n++
		e := top.Node(p.Node).ENI(p.ENI)
		if !inPrefixes(e.Prefixes, p.IP) {
			t.Errorf("%s (%s) on %s eth%d got %s, outside the ENI's prefixes %v", p.Name, p.Manifest, p.Node, p.ENI, p.IP, e.Prefixes)
		}
	}
	if n != 5 { // CoreDNS's 2 and web's 3
		t.Errorf("%d manifest pods, want 5", n)
	}
	// node51's eth0 holds 192.168.1.64/28 and pod64 has .64: CoreDNS's
	// first replica (node51) gets .65, the next free one.
	for _, p := range top.Pods {
		if p.Manifest == "Deployment kube-system/coredns" && p.Node == "node51" && p.IP.String() != "192.168.1.65" {
			t.Errorf("CoreDNS on node51 got %s, want 192.168.1.65", p.IP)
		}
	}
}

func TestPrefixDelegationReportsFullPrefixesAgainstTheManifest(t *testing.T) {
	src, err := os.ReadFile("../../topologies/prefix-delegation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// web's 40 replicas alternate node51/node81: 20 each, but each eth0
	// has one /28 (16 addresses, one or none taken by a listed pod).
	y := string(src) + strings.Replace(hardDeploy, "replicas: 2", "replicas: 40", 1)
	_, err = Parse("pd.yaml", "pd", []byte(y))
	if err == nil || !strings.Contains(err.Error(), "Deployment default/web: no free address on node") ||
		!strings.Contains(err.Error(), "delegated prefixes 192.168.1.") {
		t.Errorf("got %v, want the Deployment named with its full prefixes", err)
	}
}

// TestPodAllocationIsLinear places 30,000 replicas (issue 11 saw 15 s,
// quadratic): doubling the pods must not quadruple the time.
func TestPodAllocationIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	timeOf := func(n int) time.Duration {
		top := bigDeployment(n)
		start := time.Now()
		if errs := top.expandWorkloads(); len(errs) > 0 {
			t.Fatal(errs)
		}
		d := time.Since(start)
		if len(top.Pods) != n {
			t.Fatalf("%d pods placed, want %d", len(top.Pods), n)
		}
		return d
	}
	// The best of three runs each, so a busy machine does not fail it;
	// quadratic allocation makes the ratio 16, linear about 4.
	best := func(n int) time.Duration {
		b := timeOf(n)
		for i := 0; i < 2; i++ {
			b = min(b, timeOf(n))
		}
		return b
	}
	small, large := best(7500), best(30000)
	if large > 8*small+50*time.Millisecond {
		t.Errorf("7,500 pods took %v, 30,000 took %v: more than linear", small, large)
	}
}

// bigDeployment is a topology with one Deployment of n replicas over two
// nodes in a /16, before expansion.
func bigDeployment(n int) *Topology {
	y := strings.Replace(strings.Replace(hardLab, "192.168.1.0/24", "192.168.128.0/17", 1), "192.168.1.", "192.168.128.", -1) +
		strings.Replace(hardDeploy, "replicas: 2", fmt.Sprintf("replicas: %d", n), 1)
	top, err := decode("big.yaml", []byte(y))
	if err != nil {
		panic(err)
	}
	top.Name = "big"
	top.Nodes = top.Nodes[:1]
	top.applyDefaults()
	top.Manifests.Deployments = top.Manifests.Deployments[1:] // no CoreDNS
	return top
}

func BenchmarkExpand30000Replicas(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		top := bigDeployment(30000)
		b.StartTimer()
		top.expandWorkloads()
	}
}

// TestReplicaNamesStayUniqueAtScale: ReplicaName's 5-character suffix
// collides among 30,000 replicas; the lab skips a taken name as a
// ReplicaSet retries one, instead of failing on its own choice.
func TestReplicaNamesStayUniqueAtScale(t *testing.T) {
	top := bigDeployment(30000)
	if errs := top.expandWorkloads(); len(errs) > 0 {
		t.Fatal(errs)
	}
	seen := map[string]bool{}
	for _, p := range top.Pods {
		if seen[p.Name] {
			t.Fatalf("pod name %s given twice", p.Name)
		}
		seen[p.Name] = true
	}
}
