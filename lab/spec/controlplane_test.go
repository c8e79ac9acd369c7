package spec

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

func cpTopology(t *testing.T, edit func(string) string) (*Topology, error) {
	t.Helper()
	b, err := os.ReadFile("../../topologies/control-plane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return Parse("control-plane.yaml", "control-plane", []byte(edit(string(b))))
}

func TestControlPlaneTakesEKSDefaultsWhenAccessFieldsAreOmitted(t *testing.T) {
	top, err := cpTopology(t, func(y string) string {
		y = strings.Replace(y, "  endpointPublicAccess: true\n", "", 1)
		y = strings.Replace(y, "  endpointPrivateAccess: true\n", "", 1)
		return strings.Replace(y, "  publicAccessCidrs: [0.0.0.0/0]\n", "", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := top.ControlPlane
	if !c.PublicAccess() || c.PrivateAccess() {
		t.Errorf("public %v private %v, want EKS's defaults true and false", c.PublicAccess(), c.PrivateAccess())
	}
	if got := c.PublicCIDRs(); len(got) != 1 || got[0] != netip.MustParsePrefix("0.0.0.0/0") {
		t.Errorf("publicAccessCidrs %v, want [0.0.0.0/0]", got)
	}
	// Private access off: inside the VPC the name resolves to the NLB too.
	if got := top.EndpointAddrs(true); len(got) != 2 || got[0] != ControlPlaneNLBPublicIP(0) {
		t.Errorf("in-VPC answer with private access off: %v, want the NLB's public IPs", got)
	}
}

func TestEndpointResolvesToXENIsInsideAndTheNLBOutside(t *testing.T) {
	top, err := cpTopology(t, func(y string) string { return y })
	if err != nil {
		t.Fatal(err)
	}
	in, out := top.EndpointAddrs(true), top.EndpointAddrs(false)
	if len(in) != 2 || in[0] != netip.MustParseAddr("192.168.1.100") || in[1] != netip.MustParseAddr("192.168.11.100") {
		t.Errorf("inside the VPC: %v, want the X-ENIs", in)
	}
	if len(out) != 2 || out[0] != netip.MustParseAddr("203.0.113.200") || out[1] != netip.MustParseAddr("203.0.113.199") {
		t.Errorf("from the internet: %v, want the NLB's Elastic IPs", out)
	}
	name := top.EndpointName()
	if !strings.HasSuffix(name, ".gr7.us-east-1.eks.amazonaws.com") || len(strings.Split(name, ".")[0]) != 32 {
		t.Errorf("endpoint name %q, want <32 hex>.gr7.us-east-1.eks.amazonaws.com", name)
	}
	if VPCResolver(top.VPC.CIDR) != netip.MustParseAddr("192.168.0.2") {
		t.Errorf("VPC resolver %v, want base+2", VPCResolver(top.VPC.CIDR))
	}
	objs := strings.Join(top.Objects(), " ")
	for _, o := range []string{"eks-vpc", "eks-api-0", "eks-api-1", "eks-nlb"} {
		if !strings.Contains(objs, o) {
			t.Errorf("objects %q lack %s", objs, o)
		}
	}
}

func TestControlPlaneValidationNamesTheField(t *testing.T) {
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"no endpoint", "endpointPublicAccess: true\n  endpointPrivateAccess: true\n  publicAccessCidrs: [0.0.0.0/0]",
			"endpointPublicAccess: false\n  endpointPrivateAccess: false", "controlPlane: endpointPublicAccess and endpointPrivateAccess are both false"},
		{"bad cidr", "publicAccessCidrs: [0.0.0.0/0]", "publicAccessCidrs: [203.0.113.1/24]", "controlPlane.publicAccessCidrs[0]: 203.0.113.1/24: an IPv4 network address"},
		{"cidrs with public off", "endpointPublicAccess: true", "endpointPublicAccess: false", "controlPlane.publicAccessCidrs: publicAccessCidrs restricts the public endpoint"},
		{"two X-ENIs in one AZ", "{subnet: private-b, ip: 192.168.11.100}", "{subnet: private-a, ip: 192.168.1.101}", "controlPlane.xENIs[1].subnet: a second X-ENI in AZ us-east-1a"},
		{"X-ENI outside its subnet", "{subnet: private-a, ip: 192.168.1.100}", "{subnet: private-a, ip: 192.168.2.100}", "controlPlane.xENIs[0].ip: 192.168.2.100 is outside subnet"},
		{"X-ENI on a node's address", "ip: 192.168.1.100}", "ip: 192.168.1.11}", "is already used by node node11 eth0"},
		{"unknown subnet", "{subnet: private-a, ip: 192.168.1.100}", "{subnet: nope, ip: 192.168.1.100}", `controlPlane.xENIs[0].subnet: unknown subnet "nope"`},
		{"one X-ENI", "    - {subnet: private-b, ip: 192.168.11.100}\n", "", "controlPlane.xENIs: 1 X-ENIs"},
		{"VPC overlapping the control plane's", "cidr: 192.168.0.0/16", "cidr: 192.0.0.0/8", "vpc.cidr: 192.0.0.0/8 overlaps 192.0.2.0/24"},
		{"NLB's public IP taken", "publicIP: 203.0.113.10", "publicIP: 203.0.113.199", "public IP 203.0.113.199 is the control plane NLB's"},
		{"public endpoint without internet", "internet:\n  hosts:\n    - {name: laptop, ip: 198.51.100.10}\n  dns: {name: route53, ip: 198.51.100.53}\n", "",
			"controlPlane.endpointPublicAccess: the public endpoint's NLB is reached through the internet gateway"},
		{"name taken", "name: node21", "name: eks-api-1", `name "eks-api-1" is already used`},
		{"walk from a pod", "from: node11", "from: pod12", `walks[0].from: "pod12" is not a node, an internet host or an API server instance`},
		{"walk from the internet without Route 53", "  dns: {name: route53, ip: 198.51.100.53}\n", "", "walks[1].from: laptop resolves the endpoint through Route 53: add internet.dns"},
		{"API server walk to a pod", "to: node11", "to: pod12", `walks[2].to: "pod12" is not a node`},
		{"walk to the endpoint with a to", "    from: node11\n", "    from: node11\n    to: node21\n", "walks[0].to: a walk to the cluster endpoint has no to:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := cpTopology(t, func(y string) string {
				if !strings.Contains(y, c.old) {
					t.Fatalf("topology lacks %q", c.old)
				}
				return strings.Replace(y, c.old, c.new, 1)
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestControlPlaneTopologyIsValid(t *testing.T) {
	if _, err := cpTopology(t, func(y string) string { return y }); err != nil {
		t.Fatal(err)
	}
}
