package plan

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/spec"
)

func controlPlanePlan(t *testing.T, edit func(string) string) *Plan {
	t.Helper()
	b, err := os.ReadFile("../../topologies/control-plane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top, err := spec.Parse("control-plane.yaml", "control-plane", []byte(edit(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	return Build(top, "t")
}

func TestAPIServerXENIIsInTheCustomerSubnetAndCarriesTheVPCRoute(t *testing.T) {
	p := controlPlanePlan(t, func(y string) string { return y })
	ns := p.NS("eks-api-1")
	if ns == nil || ns.Role != RoleAPIServer {
		t.Fatalf("no API server namespace eks-api-1: %v", p.NSNames())
	}
	var xeni, own bool
	for _, a := range ns.Addrs {
		xeni = xeni || (a.Dev == XENIDev && a.Prefix == netip.MustParsePrefix("192.168.11.100/24"))
		own = own || (a.Dev == "eth0" && a.Prefix == netip.MustParsePrefix("192.0.2.74/26"))
	}
	if !xeni || !own {
		t.Errorf("addresses %v: want the X-ENI 192.168.11.100/24 on eth1 and 192.0.2.74/26 on eth0", ns.Addrs)
	}
	var vpcRoute, def bool
	for _, r := range ns.Routes {
		vpcRoute = vpcRoute || (r.Dst.String() == "192.168.0.0/16" && r.Dev == XENIDev && r.Gw.String() == "192.168.11.1")
		def = def || (r.Dst.Bits() == 0 && r.Gw == spec.ControlPlaneNLBIP(1))
	}
	if !vpcRoute || !def {
		t.Errorf("routes %+v: want the VPC via the X-ENI's subnet router, and the default via the NLB node in its AZ", ns.Routes)
	}
	// The X-ENI's port is on the customer router's private-b bridge.
	port := spec.RouterPortName("eks-api-1", 1)
	found := false
	for _, v := range p.Veths {
		found = found || (v.A.NS == ns.Name && v.A.Name == XENIDev && v.B.Name == port && v.B.Master == "br-private-b" && v.B.NS == p.NS(spec.RouterName).Name)
	}
	if !found {
		t.Errorf("no veth from eks-api-1 eth1 to the VPC router's br-private-b")
	}
}

func TestVPCResolverAndNLBPublicIPsAtTheGateway(t *testing.T) {
	p := controlPlanePlan(t, func(y string) string { return y })
	r := p.NS(spec.RouterName)
	if !strings.Contains(strings.Join(strs(r.Addrs), " "), "lo 192.168.0.2/32") {
		t.Errorf("router addresses %v lack the VPC resolver 192.168.0.2 on lo", r.Addrs)
	}
	igw := p.NS(spec.GatewayName)
	for _, want := range []string{"-d 203.0.113.200/32 -m comment --comment \"lab: internet gateway, public to private\" -j DNAT --to-destination 192.0.2.20",
		"-d 203.0.113.199/32 -m comment --comment \"lab: internet gateway, public to private\" -j DNAT --to-destination 192.0.2.84"} {
		if !strings.Contains(igw.Iptables, want) {
			t.Errorf("gateway rules lack %q:\n%s", want, igw.Iptables)
		}
	}
	route := false
	for _, rt := range igw.Routes {
		route = route || (rt.Dst == spec.ControlPlaneCIDR && rt.Dev == GatewayControlPlaneIf)
	}
	if !route {
		t.Errorf("gateway routes %+v lack the control plane VPC", igw.Routes)
	}
}

func strs(as []Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Dev+" "+a.Prefix.String())
	}
	return out
}

func TestNLBAdmitsOnlyPublicAccessCIDRs(t *testing.T) {
	p := controlPlanePlan(t, func(y string) string {
		return strings.Replace(y, "publicAccessCidrs: [0.0.0.0/0]", "publicAccessCidrs: [198.51.100.0/24]", 1)
	})
	nlb := p.NS(spec.ControlPlaneNLBName)
	if nlb == nil {
		t.Fatal("no NLB namespace")
	}
	accept := strings.Index(nlb.Iptables, "-A FORWARD -s 198.51.100.0/24 -p tcp -m tcp --dport 443")
	drop := strings.Index(nlb.Iptables, "-A FORWARD -p tcp -m tcp --dport 443 -m comment --comment \"lab: EKS publicAccessCidrs, source not admitted\" -j DROP")
	if accept < 0 || drop < accept {
		t.Errorf("want the CIDR accepted before the drop:\n%s", nlb.Iptables)
	}
	if strings.Contains(nlb.Iptables, "0.0.0.0/0") {
		t.Errorf("the default 0.0.0.0/0 is admitted although publicAccessCidrs replaces it:\n%s", nlb.Iptables)
	}
	if !strings.Contains(nlb.Iptables, "-A PREROUTING -i eth1 -d 192.0.2.84/32 -p tcp -m tcp --dport 443") ||
		!strings.Contains(nlb.Iptables, "--to-destination 192.0.2.74:443") {
		t.Errorf("NLB node 1 does not forward to API server 1:\n%s", nlb.Iptables)
	}
}

func TestPrivateOnlyEndpointHasNoNLB(t *testing.T) {
	p := controlPlanePlan(t, func(y string) string {
		y = strings.Replace(y, "endpointPublicAccess: true", "endpointPublicAccess: false", 1)
		y = strings.Replace(y, "    from: laptop\n", "    from: node21\n", 1) // CP2 needs the public endpoint
		return strings.Replace(y, "  publicAccessCidrs: [0.0.0.0/0]\n", "", 1)
	})
	if p.NS(spec.ControlPlaneNLBName) != nil {
		t.Error("an NLB namespace with the public endpoint off")
	}
	if strings.Contains(p.NS(spec.GatewayName).Iptables, "192.0.2.") {
		t.Errorf("the gateway maps a control plane address with the public endpoint off:\n%s", p.NS(spec.GatewayName).Iptables)
	}
	for _, r := range p.NS("eks-api-0").Routes {
		if r.Dst.Bits() == 0 && r.Gw != spec.Gateway(spec.ControlPlaneSubnet(0)) {
			t.Errorf("API server default %+v, want its subnet router without an NLB", r)
		}
	}
}
