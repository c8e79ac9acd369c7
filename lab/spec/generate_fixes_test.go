package spec_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
)

// lbSubnetWithPods is seed 6's shape: the load balancer's subnet is the
// nodes' subnet, and a Deployment's replicas are addressed in it.
const lbSubnetWithPods = `
vpc: {cidr: 192.168.0.0/16}
azs:
  - name: us-east-1a
    subnets: [{name: a, cidr: 192.168.0.0/24, role: internal-elb}]
nodes:
  - {name: n1, enis: [{subnet: a, ip: 192.168.0.4}]}
hosts:
  - {name: client, subnet: a, ip: 192.168.0.200}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api}]}
---
apiVersion: v1
kind: Service
metadata:
  name: api
  annotations:
    service.beta.kubernetes.io/aws-load-balancer-type: external
    service.beta.kubernetes.io/aws-load-balancer-nlb-target-type: ip
spec:
  type: LoadBalancer
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
`

func lbIPs(t *testing.T, top *spec.Topology) map[netip.Addr]bool {
	t.Helper()
	m, err := lb.Build(top)
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]bool{}
	for _, l := range m.LBs {
		for _, n := range l.Nodes {
			out[n.IP] = true
		}
	}
	return out
}

// Class 1 of issue 10: labctl pod delete gave the replacement the NLB's
// address, and the next re-sync moved the NLB onto the deleted pod's.
func TestReplacementPodNeverTakesOrMovesALoadBalancersAddress(t *testing.T) {
	top, err := spec.Parse("t.yaml", "t", []byte(lbSubnetWithPods))
	if err != nil {
		t.Fatal(err)
	}
	before := lbIPs(t, top)
	var churn spec.Churn
	for round := 0; round < 3; round++ {
		var gone spec.Pod
		for _, p := range top.Pods {
			if strings.HasPrefix(p.Name, "api-") {
				gone = p
				break
			}
		}
		r, err := top.Replacement(gone, churn)
		if err != nil {
			t.Fatal(err)
		}
		if before[r.IP] {
			t.Fatalf("round %d: the replacement of %s got %s, a load balancer node's address", round, gone.Name, r.IP)
		}
		churn.Deleted = append(churn.Deleted, gone.Name)
		churn.Added = append(churn.Added, r)
		churn.Released = append(churn.Released, gone.IP)
		top.ApplyChurn(churn)
		after := lbIPs(t, top)
		for a := range before {
			if !after[a] {
				t.Fatalf("round %d: the re-sync moved a load balancer node off %s (now %v)", round, a, after)
			}
		}
	}
}

// A prefix-delegation VPC with manifests: CoreDNS's replicas are addressed
// by the loader, and must come out of the ENI's delegated prefixes.
func TestLoaderAddressesPodsFromDelegatedPrefixes(t *testing.T) {
	const doc = `
vpc: {cidr: 10.1.0.0/16, prefixDelegation: true}
azs: [{name: az1, subnets: [{name: a, cidr: 10.1.1.0/24}]}]
nodes:
  - {name: n1, enis: [{subnet: a, ip: 10.1.1.4, prefixes: [10.1.1.224/28]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
`
	top, err := spec.Parse("t.yaml", "t", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	pf := netip.MustParsePrefix("10.1.1.224/28")
	for _, p := range top.Pods {
		if !pf.Contains(p.IP) {
			t.Errorf("pod %s got %s, outside eth0's prefix %s", p.Name, p.IP, pf)
		}
	}
	if len(top.Pods) != 2 {
		t.Errorf("%d pods, want CoreDNS's 2", len(top.Pods))
	}
}
