package spec

import (
	"net/netip"
	"strings"
	"testing"
)

const lab = `name: m
vpc: {cidr: 192.168.0.0/16}
azs: [{name: az1, subnets: [{name: a, cidr: 192.168.1.0/24}]}]
nodes:
  - {name: n1, enis: [{subnet: a, ip: 192.168.1.50}]}
  - {name: n2, enis: [{subnet: a, ip: 192.168.1.60}]}
pods:
  - {name: client, node: n1, eni: 0, ip: 192.168.1.51}
`

const deploy = `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, ports: [{name: http, containerPort: 80}]}]
`

const svc = `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`

func TestDeploymentReplicasArePlacedAddressedAndNamedDeterministically(t *testing.T) {
	a, err := parse(t, lab+deploy+svc)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := parse(t, lab+deploy+svc)
	var web []Pod
	for _, p := range a.Pods {
		if p.Manifest == "Deployment default/web" {
			web = append(web, p)
		}
	}
	if len(web) != 3 || web[0].Node != "n1" || web[1].Node != "n2" || web[2].Node != "n1" {
		t.Fatalf("replicas %+v, want three placed on n1, n2, n1", web)
	}
	for i := range a.Pods {
		if a.Pods[i].Name != b.Pods[i].Name || a.Pods[i].IP != b.Pods[i].IP {
			t.Errorf("pod %d differs between two parses: %s/%s vs %s/%s", i, a.Pods[i].Name, a.Pods[i].IP, b.Pods[i].Name, b.Pods[i].IP)
		}
	}
	if !strings.HasPrefix(web[0].Name, "web-") || len(web[0].Name) != len("web-")+10+1+5 {
		t.Errorf("replica name %q is not <deployment>-<10>-<5>", web[0].Name)
	}
}

func TestServiceDefaultsFollowKubernetesAndEKS(t *testing.T) {
	top, err := parse(t, lab+deploy+svc)
	if err != nil {
		t.Fatal(err)
	}
	var web, dns string
	for _, s := range top.Manifests.Services {
		switch s.Name {
		case "web":
			web = s.Spec.ClusterIP
			if s.Spec.Ports[0].NodePort != 30000 || s.Spec.ExternalTrafficPolicy != "Cluster" {
				t.Errorf("NodePort %d policy %s", s.Spec.Ports[0].NodePort, s.Spec.ExternalTrafficPolicy)
			}
		case "kube-dns":
			dns = s.Spec.ClusterIP
		}
	}
	if dns != "10.100.0.10" || web != "10.100.0.100" {
		t.Errorf("kube-dns %s (want 10.100.0.10), web %s (want 10.100.0.100)", dns, web)
	}
}

func TestManifestErrorsNameTheObjectAndField(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"NodePort outside the range", strings.Replace(svc, "targetPort: http}", "targetPort: http, nodePort: 29999}", 1),
			[]string{"Service default/web", "spec.ports[0].nodePort", "29999 is outside the NodePort range 30000-32767"}},
		{"targetPort no container has", strings.Replace(svc, "targetPort: http", "targetPort: grpc", 1),
			[]string{"Service default/web", "spec.ports[0].targetPort", `"grpc" names no TCP container port`}},
		{"duplicate ClusterIP", strings.Replace(svc, "type: NodePort", "clusterIP: 10.100.0.10", 1),
			[]string{"Service default/web", "spec.clusterIP", "10.100.0.10 is already the ClusterIP of Service kube-system/kube-dns"}},
		{"ClusterIP outside the service CIDR", strings.Replace(svc, "type: NodePort", "clusterIP: 192.168.9.9", 1),
			[]string{"outside the service CIDR 10.100.0.0/16"}},
		{"unknown kind", "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			[]string{`kind "ConfigMap"`, "not modelled"}},
		{"unknown field", strings.Replace(svc, "  selector:", "  selectorr:", 1),
			[]string{"t.yaml:21: Service", `unknown field "selectorr"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { mustFail(t, lab+deploy+c.yaml, c.want...) })
	}
}

func TestNodePortUsedTwiceIsRejected(t *testing.T) {
	two := strings.Replace(svc, "targetPort: http}", "targetPort: http, nodePort: 30080}", 1)
	other := strings.Replace(two, "name: web}", "name: web2}", 1)
	mustFail(t, lab+deploy+two+other, "Service default/web2", "30080 is already used by Service default/web")
}

func TestSelectorMatchingNothingIsAWarningNotAnError(t *testing.T) {
	top, err := parse(t, lab+deploy+strings.Replace(svc, "selector: {app: web}", "selector: {app: nothing}", 1))
	if err != nil {
		t.Fatalf("a Service that selects nothing exists in Kubernetes, with no endpoints: %v", err)
	}
	found := false
	for _, w := range top.Manifests.Warnings {
		found = found || strings.Contains(w, "picks no pod")
	}
	if !found {
		t.Errorf("no warning in %v", top.Manifests.Warnings)
	}
}

// deploymentPod parses the test topology and returns one of its
// Deployment's pods in namespace default.
func deploymentPod(t *testing.T) (*Topology, Pod) {
	t.Helper()
	top, err := parse(t, lab+deploy+svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range top.Pods {
		if p.Manifest != "" && p.Namespace == "default" {
			return top, p
		}
	}
	t.Fatal("the test topology has no Deployment pod in default")
	return nil, Pod{}
}

func TestReplacementGetsTheNextNameAndANewAddress(t *testing.T) {
	top, gone := deploymentPod(t)
	r, err := top.Replacement(gone, Churn{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name == gone.Name || r.IP == gone.IP || r.Node != gone.Node {
		t.Errorf("replacement %s/%s on %s for %s/%s", r.Name, r.IP, r.Node, gone.Name, gone.IP)
	}
	top.ApplyChurn(Churn{Deleted: []string{gone.Name}, Added: []Pod{r}})
	if top.Pod(gone.Name) != nil || top.Pod(r.Name) == nil {
		t.Error("churn not applied")
	}
	if _, err := top.Replacement(*top.Pod("client"), Churn{}); err == nil {
		t.Error("a pod of no Deployment was replaced")
	}
}

func TestReplacementNeverReusesAReleasedAddress(t *testing.T) {
	// Replacing the replacement: the first pod's address is free again in
	// the topology, but the VPC CNI's cooldown keeps it out of use.
	top, gone := deploymentPod(t)
	var c Churn
	seen := map[netip.Addr]string{gone.IP: gone.Name}
	for range 3 {
		r, err := top.Replacement(gone, c)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[r.IP]; ok {
			t.Fatalf("replacement %s got %s, which %s held", r.Name, r.IP, prev)
		}
		seen[r.IP] = r.Name
		c.Deleted, c.Added, c.Released = append(c.Deleted, gone.Name), append(c.Added, r), append(c.Released, gone.IP)
		top.ApplyChurn(c)
		gone = r
	}
}
