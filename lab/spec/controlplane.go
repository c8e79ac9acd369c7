package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ControlPlane is the EKS cluster's control plane: API server instances
// in an AWS-owned VPC, an NLB for the public endpoint, and cross-account
// ENIs (X-ENIs) in the customer's subnets for the private endpoint and for
// the API server's calls to kubelets. The access fields and their defaults
// are EKS's: public on from 0.0.0.0/0, private off ("Cluster API server
// endpoint", https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html).
type ControlPlane struct {
	// EndpointPublicAccess (default true): the endpoint name resolves to
	// the NLB's public IPs outside the VPC, and the NLB admits
	// PublicAccessCIDRs.
	EndpointPublicAccess *bool `yaml:"endpointPublicAccess"`
	// EndpointPrivateAccess (default false): inside the VPC the endpoint
	// name resolves to the X-ENIs (a private hosted zone the VPC resolver
	// answers).
	EndpointPrivateAccess *bool `yaml:"endpointPrivateAccess"`
	// PublicAccessCIDRs are the sources the public endpoint admits
	// (default 0.0.0.0/0).
	PublicAccessCIDRs []netip.Prefix `yaml:"publicAccessCidrs"`
	// XENIs are the X-ENIs EKS places in the cluster's subnets, one per
	// API server instance, in two AZs (EKS asks for subnets in at least
	// two AZs). The lab writes their addresses as it writes every ENI's.
	XENIs []XENI `yaml:"xENIs"`
}

// XENI is one cross-account ENI: owned by the control plane, attached to
// an API server instance, with an address of a customer subnet.
type XENI struct {
	Subnet string     `yaml:"subnet"`
	IP     netip.Addr `yaml:"ip"`
}

// The control plane's own VPC, from a documentation range the customer's
// VPC may not use: subnet i is ControlPlaneCIDR's i-th /26, its API server
// instance is base+10 and its NLB node base+20.
var (
	ControlPlaneCIDR = netip.MustParsePrefix("192.0.2.0/24")
	// ControlPlaneGatewayLink joins the control plane VPC's router and the
	// lab's internet gateway (the router .5, the gateway .6).
	ControlPlaneGatewayLink = netip.MustParsePrefix("169.254.255.4/30")
)

// Object names of the control plane's namespaces.
const (
	ControlPlaneRouterName = "eks-vpc"
	ControlPlaneNLBName    = "eks-nlb"
	// APIServerCount is how many API server instances EKS runs (at least
	// two, across AZs; the lab runs two).
	APIServerCount = 2
	// APIServerPort is the endpoint's port.
	APIServerPort = 443
	// KubeletPort is the kubelet's API, which the API server calls for
	// kubectl exec and logs.
	KubeletPort = 10250
	// ControlPlanePublicIPBase: NLB node i's Elastic IP is 203.0.113.(200-i).
	ControlPlanePublicIPBase = 200
)

// APIServerName is API server instance i's object name.
func APIServerName(i int) string { return fmt.Sprintf("eks-api-%d", i) }

// ControlPlaneSubnet is the control plane VPC's subnet in the i-th AZ.
func ControlPlaneSubnet(i int) netip.Prefix {
	b := ControlPlaneCIDR.Addr().As4()
	b[3] = byte(64 * i)
	return netip.PrefixFrom(netip.AddrFrom4(b), 26)
}

func offset(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for ; n > 0; n-- {
		a = a.Next()
	}
	return a
}

// APIServerIP is API server i's address in the control plane VPC.
func APIServerIP(i int) netip.Addr { return offset(ControlPlaneSubnet(i), 10) }

// ControlPlaneNLBIP is the NLB's node address in AZ i.
func ControlPlaneNLBIP(i int) netip.Addr { return offset(ControlPlaneSubnet(i), 20) }

// ControlPlaneNLBPublicIP is the Elastic IP of the NLB's node in AZ i.
func ControlPlaneNLBPublicIP(i int) netip.Addr {
	b := PublicRange.Addr().As4()
	b[3] = byte(ControlPlanePublicIPBase - i)
	return netip.AddrFrom4(b)
}

// VPCResolver is the Amazon-provided DNS server, the VPC CIDR's base + 2
// ("Amazon DNS server", https://docs.aws.amazon.com/vpc/latest/userguide/AmazonDNS-concepts.html).
func VPCResolver(vpc netip.Prefix) netip.Addr { return offset(vpc, 2) }

// PublicAccess says whether the public endpoint is on (EKS default true).
func (c *ControlPlane) PublicAccess() bool {
	return c.EndpointPublicAccess == nil || *c.EndpointPublicAccess
}

// PrivateAccess says whether the private endpoint is on (default false).
func (c *ControlPlane) PrivateAccess() bool {
	return c.EndpointPrivateAccess != nil && *c.EndpointPrivateAccess
}

// PublicCIDRs are the sources the public endpoint admits.
func (c *ControlPlane) PublicCIDRs() []netip.Prefix {
	if len(c.PublicAccessCIDRs) == 0 {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	return c.PublicAccessCIDRs
}

// PublicAdmits says whether the public endpoint admits source a.
func (c *ControlPlane) PublicAdmits(a netip.Addr) bool {
	return slices.ContainsFunc(c.PublicCIDRs(), func(p netip.Prefix) bool { return p.Contains(a) })
}

// Region is the region of the topology's first AZ ("us-east-1a" is in
// "us-east-1").
func (t *Topology) Region() string {
	if len(t.AZs) == 0 {
		return "us-east-1"
	}
	n := t.AZs[0].Name
	if len(n) > 1 && n[len(n)-1] >= 'a' && n[len(n)-1] <= 'z' && n[len(n)-2] >= '0' && n[len(n)-2] <= '9' {
		return n[:len(n)-1]
	}
	return n
}

// EndpointName is the cluster endpoint's DNS name as EKS forms it: 32
// upper-case hex digits, "gr7", the region, "eks.amazonaws.com". The
// digits are a hash of the topology's name, so a topology always has the
// same name.
func (t *Topology) EndpointName() string {
	h := sha256.Sum256([]byte("eks/" + t.Name))
	return strings.ToUpper(hex.EncodeToString(h[:16])) + ".gr7." + t.Region() + ".eks.amazonaws.com"
}

// ControlPlaneObjects are the control plane's namespaces' object names.
func (t *Topology) ControlPlaneObjects() []string {
	if t.ControlPlane == nil {
		return nil
	}
	out := []string{ControlPlaneRouterName}
	for i := 0; i < APIServerCount; i++ {
		out = append(out, APIServerName(i))
	}
	if t.ControlPlane.PublicAccess() {
		out = append(out, ControlPlaneNLBName)
	}
	return out
}

// XENIOf returns the X-ENI of API server i, or nil.
func (t *Topology) XENIOf(i int) *XENI {
	if t.ControlPlane == nil || i < 0 || i >= len(t.ControlPlane.XENIs) {
		return nil
	}
	return &t.ControlPlane.XENIs[i]
}

// XENIInAZ is the X-ENI in az, or the first when none is (an AZ without
// one reaches the private endpoint across AZs); nil when there is none.
func (t *Topology) XENIInAZ(az string) (int, *XENI) {
	if t.ControlPlane == nil || len(t.ControlPlane.XENIs) == 0 {
		return -1, nil
	}
	for i := range t.ControlPlane.XENIs {
		if s, ok := t.Subnet(t.ControlPlane.XENIs[i].Subnet); ok && s.AZ == az {
			return i, &t.ControlPlane.XENIs[i]
		}
	}
	return 0, &t.ControlPlane.XENIs[0]
}

// EndpointAddrs is what the endpoint name resolves to: inside the VPC
// (the VPC resolver) the X-ENIs when private access is on, else the NLB's
// public IPs; outside (Route 53) the NLB's public IPs when public access
// is on. None: the name does not resolve there.
func (t *Topology) EndpointAddrs(insideVPC bool) []netip.Addr {
	c := t.ControlPlane
	if c == nil {
		return nil
	}
	var out []netip.Addr
	if insideVPC && c.PrivateAccess() {
		for _, x := range c.XENIs {
			out = append(out, x.IP)
		}
		return out
	}
	if c.PublicAccess() {
		for i := 0; i < APIServerCount; i++ {
			out = append(out, ControlPlaneNLBPublicIP(i))
		}
	}
	return out
}

// controlPlane checks the control plane section.
func (v *validator) controlPlane(subnets map[string]Subnet, claim func(string, string, string), own func(string, netip.Addr, string)) {
	c := v.t.ControlPlane
	if c == nil {
		return
	}
	p := "controlPlane"
	if !c.PublicAccess() && !c.PrivateAccess() {
		v.add(p, "endpointPublicAccess and endpointPrivateAccess are both false; EKS needs at least one endpoint")
	}
	if c.PublicAccess() && v.t.Internet == nil {
		v.add(p+".endpointPublicAccess", "the public endpoint's NLB is reached through the internet gateway: add an internet: section, or set endpointPublicAccess: false")
	}
	if !c.PublicAccess() && len(c.PublicAccessCIDRs) > 0 {
		v.add(p+".publicAccessCidrs", "publicAccessCidrs restricts the public endpoint, which is off (endpointPublicAccess: false)")
	}
	for i, cidr := range c.PublicAccessCIDRs {
		if !cidr.IsValid() || !cidr.Addr().Is4() || cidr.Masked() != cidr {
			v.add(fmt.Sprintf("%s.publicAccessCidrs[%d]", p, i), "%v: an IPv4 network address is required, for example 203.0.113.0/24", cidr)
		}
	}
	if vpc := v.t.VPC.CIDR; vpc.IsValid() && vpc.Overlaps(ControlPlaneCIDR) {
		v.add("vpc.cidr", "%s overlaps %s, the lab's AWS-owned control plane VPC", vpc, ControlPlaneCIDR)
	}
	for _, name := range v.t.ControlPlaneObjects() {
		claim(p, name, "the control plane")
	}
	if len(c.XENIs) != APIServerCount {
		v.add(p+".xENIs", "%d X-ENIs: the lab's control plane has %d API server instances, one X-ENI each, in two AZs", len(c.XENIs), APIServerCount)
	}
	azs := map[string]bool{}
	for i, x := range c.XENIs {
		xp := fmt.Sprintf("%s.xENIs[%d]", p, i)
		s, ok := subnets[x.Subnet]
		if !ok {
			v.add(xp+".subnet", "unknown subnet %q", x.Subnet)
			continue
		}
		if azs[s.AZ] {
			v.add(xp+".subnet", "a second X-ENI in AZ %s; EKS places them in subnets of two AZs", s.AZ)
		}
		azs[s.AZ] = true
		if v.checkHostAddr(xp+".ip", x.IP, s) {
			if slices.Contains(v.t.LBAddrs(s), x.IP) {
				v.add(xp+".ip", "%s is set aside for load balancer nodes in subnet %s", x.IP, s.Name)
			}
			own(xp+".ip", x.IP, "X-ENI of "+APIServerName(i))
		}
	}
	if c.PublicAccess() {
		taken := map[netip.Addr]bool{}
		if v.t.Internet != nil {
			for _, m := range v.t.Internet.PublicIPs {
				taken[m.Public] = true
			}
		}
		for _, n := range v.t.NATGateways {
			taken[n.PublicIP] = true
		}
		for i := 0; i < APIServerCount; i++ {
			if a := ControlPlaneNLBPublicIP(i); taken[a] {
				v.add(p, "public IP %s is the control plane NLB's; pick another for the topology's own", a)
			}
		}
	}
}

// WalkControlPlane is a walk of the control plane path: from a node, a
// pod or an internet host to the cluster endpoint (resolve its name, TCP
// 443, TLS, GET /version), or from an API server instance (From) to a
// node's kubelet (To) on 10250.
const WalkControlPlane = "control-plane"

// controlPlaneWalk checks a control plane walk's ends.
func (v *validator) controlPlaneWalk(p string, w Walk, objects map[string]string) {
	if v.t.ControlPlane == nil {
		v.add(p+".kind", "a control-plane walk needs a controlPlane section")
		return
	}
	if w.Expect != "answer" && w.Expect != "drop" {
		v.add(p+".expect", "expect %q: use answer or drop", w.Expect)
	}
	kind, _, _ := strings.Cut(objects[w.From], " ")
	if slices.Contains([]string{APIServerName(0), APIServerName(1)}, w.From) {
		if v.t.Node(w.To) == nil {
			v.add(p+".to", "%q is not a node: an API server's walk goes to a kubelet", w.To)
		}
		return
	}
	switch {
	case kind != "node" && kind != "internet-host":
		v.add(p+".from", "%q is not a node, an internet host or an API server instance (eks-api-0, eks-api-1)", w.From)
	case kind == "internet-host" && !v.t.ControlPlane.PublicAccess():
		v.add(p+".from", "%s is on the internet, and the public endpoint is off (endpointPublicAccess: false)", w.From)
	case kind == "internet-host" && (v.t.Internet == nil || v.t.Internet.DNS == nil):
		v.add(p+".from", "%s resolves the endpoint through Route 53: add internet.dns", w.From)
	}
	if w.To != "" {
		v.add(p+".to", "a walk to the cluster endpoint has no to: (it resolves the endpoint's name)")
	}
}
