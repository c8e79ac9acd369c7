package spec

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a topology, with the place it was found.
type Error struct {
	File string
	Line int
	Path string // YAML path, e.g. nodes[1].enis[0].ip
	Msg  string
}

func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one validation pass, so a user fixes the
// file once rather than once per problem.
type Errors []Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// MaxIfName is the longest interface name the kernel accepts (IFNAMSIZ-1).
const MaxIfName = 15

// MaxLabName keeps namespace names and state paths short and readable.
const MaxLabName = 32

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
var walkName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)

// reservedNames are namespace names the lab itself uses.
var reservedNames = map[string]bool{RouterName: true, GatewayName: true, InternetName: true}

// ValidateLabName checks a lab name given on the command line or in a file.
func ValidateLabName(name string) error {
	if len(name) > MaxLabName || !dnsLabel.MatchString(name) {
		return fmt.Errorf("lab name %q: use at most %d lowercase letters, digits and '-', "+
			"starting and ending with a letter or digit", name, MaxLabName)
	}
	return nil
}

// ValidateIptables checks an iptables backend name.
func ValidateIptables(backend string) error {
	if backend != IptablesNFT && backend != IptablesLegacy {
		return fmt.Errorf("backend %q: use nft or legacy", backend)
	}
	return nil
}

type validator struct {
	t    *Topology
	errs Errors
	// badServiceCIDR is set once vpc.serviceCIDR is reported, so Services
	// are not blamed for addresses outside it.
	badServiceCIDR bool
}

// addAt reports a problem in a Kubernetes manifest, by its document's line.
func (v *validator) addAt(line int, object, format string, args ...any) {
	v.errs = append(v.errs, Error{File: v.t.File, Line: line, Path: object, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) add(path, format string, args ...any) {
	if line, where, ok := v.manifestPod(path); ok {
		v.addAt(line, where, format, args...)
		return
	}
	v.errs = append(v.errs, Error{File: v.t.File, Line: v.t.Line(path), Path: path,
		Msg: fmt.Sprintf(format, args...)})
}

// manifestPod maps a path under pods[N], when pod N came from a Pod or
// Deployment manifest, to that manifest's line and a name the file shows
// ("Deployment default/web pod web-...-x ip"): the file has no pods[N].
func (v *validator) manifestPod(path string) (line int, where string, ok bool) {
	rest, found := strings.CutPrefix(path, "pods[")
	if !found {
		return 0, "", false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return 0, "", false
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil || n < 0 || n >= len(v.t.Pods) || v.t.Pods[n].Manifest == "" {
		return 0, "", false
	}
	pd := v.t.Pods[n]
	where = pd.Manifest + " pod " + pd.Name
	if field := strings.TrimPrefix(rest[end+1:], "."); field != "" {
		where += " " + field
	}
	return v.t.Manifests.lines[pd.Manifest], where, true
}

// describe names a path for another object's message.
func (v *validator) describe(path string) string {
	if _, _, ok := v.manifestPod(path); ok {
		var n int
		fmt.Sscanf(path, "pods[%d]", &n)
		return v.t.Pods[n].Name + " of " + v.t.Pods[n].Manifest
	}
	return path
}

// Validate checks the whole topology and returns every problem, or nil.
// Nothing may be created for a topology that does not validate.
func (t *Topology) Validate() Errors {
	v := &validator{t: t}
	if err := ValidateLabName(t.Name); err != nil {
		v.add("name", "%v", err)
	}
	if err := ValidateIptables(t.Iptables); err != nil {
		v.add("iptables", "%v", err)
	}
	if m := t.KubeProxy.Mode; m != KubeProxyIPTables && m != KubeProxyNFTables {
		v.add("kubeProxy.mode", "kube-proxy mode %q: use iptables or nftables", m)
	}
	if err := ValidateVPCCNI(t.VPCCNI); err != nil {
		v.add("vpcCNI.version", "%v", err)
	}
	v.vpc()
	subnets := v.subnets()
	owners := map[netip.Addr]string{} // every address in the VPC, to catch duplicates
	objects := map[string]string{}    // object names share one space (netns names)
	claim := func(path, name, kind string) {
		if prev, ok := objects[name]; ok {
			v.add(path, "name %q is already used by %s; nodes, pods and hosts need distinct names", name, prev)
			return
		}
		objects[name] = kind + " " + v.describe(path)
	}
	type owned struct {
		path string
		a    netip.Addr
	}
	var order []owned
	own := func(path string, a netip.Addr, what string) {
		if prev, ok := owners[a]; ok {
			v.add(path, "address %s is already used by %s", a, prev)
			return
		}
		owners[a] = what
		order = append(order, owned{path, a})
	}
	delegated := v.nodes(subnets, claim, own)
	v.pods(claim, own)
	v.hosts(subnets, claim, own)
	v.natGateways(subnets, claim, own)
	v.controlPlane(subnets, claim, own)
	// EC2 gives an address of a delegated /28 to no other ENI, neither as
	// its primary nor as a secondary IP.
	for _, o := range order {
		if p, _ := o.a.Prefix(28); o.a.Is4() && delegated[p] != "" {
			v.add(o.path, "%s is inside prefix %s, delegated to %s", o.a, p, delegated[p])
		}
	}
	v.internet(claim, owners)
	v.walks(objects)
	v.services()
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (v *validator) vpc() {
	c := v.t.VPC.CIDR
	switch {
	case !c.IsValid():
		v.add("vpc.cidr", "a VPC CIDR is required, for example 192.168.0.0/16")
	case !c.Addr().Is4():
		v.add("vpc.cidr", "%s: the lab models IPv4 VPCs only", c)
	case c.Bits() < 16 || c.Bits() > 28:
		v.add("vpc.cidr", "%s: a VPC CIDR must be between /16 and /28, as in AWS", c)
	case c.Masked() != c:
		v.add("vpc.cidr", "%s is not a network address (did you mean %s?)", c, c.Masked())
	}
	if m := v.t.VPC.MTU; m < 576 || m > 9001 {
		v.add("vpc.mtu", "MTU %d is outside 576..9001, the range the VPC CNI accepts", m)
	}
	v.serviceCIDR()
}

// Private ranges and link-local, for the service CIDR rules.
var (
	rfc1918   = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16")}
	linkLocal = netip.MustParsePrefix("169.254.0.0/16")
)

// serviceCIDR enforces EKS's rules for serviceIpv4Cidr (Amazon EKS API
// reference, KubernetesNetworkConfigRequest): inside 10.0.0.0/8,
// 172.16.0.0/12 or 192.168.0.0/16, between /24 and /12, not overlapping the
// VPC. The lab's own link-local and internet ranges are named explicitly.
func (v *validator) serviceCIDR() {
	s, c := v.t.VPC.ServiceCIDR, v.t.VPC.CIDR
	bad := func(format string, args ...any) {
		v.add("vpc.serviceCIDR", format, args...)
		v.badServiceCIDR = true
	}
	private := false
	for _, p := range rfc1918 {
		private = private || contains(p, s)
	}
	switch {
	case !s.IsValid() || !s.Addr().Is4():
		bad("%s: the lab models an IPv4 service CIDR only", s)
	case s.Masked() != s:
		bad("%s is not a network address (did you mean %s?)", s, s.Masked())
	case s.Overlaps(linkLocal):
		bad("service CIDR %s overlaps the link-local %s (the pod gateway %s lives there)", s, linkLocal, PodGateway)
	case s.Overlaps(InternetLAN) || s.Overlaps(PublicRange):
		bad("service CIDR %s overlaps the lab's internet (%s, %s)", s, InternetLAN, PublicRange)
	case !private:
		bad("service CIDR %s must be inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, as EKS requires", s)
	case s.Bits() < 12 || s.Bits() > 24:
		bad("service CIDR %s must be between /12 and /24, as EKS requires", s)
	case c.IsValid() && s.Overlaps(c):
		bad("service CIDR %s overlaps the VPC CIDR %s", s, c)
	}
}

func (v *validator) subnets() map[string]Subnet {
	out := map[string]Subnet{}
	var all []struct {
		path string
		s    Subnet
	}
	if len(v.t.AZs) == 0 {
		v.add("azs", "at least one AZ with a subnet is required")
	}
	azSeen := map[string]bool{}
	for i, az := range v.t.AZs {
		p := fmt.Sprintf("azs[%d]", i)
		if az.Name == "" {
			v.add(p+".name", "an AZ needs a name, for example us-east-1a")
		} else if azSeen[az.Name] {
			v.add(p+".name", "AZ %q is listed twice", az.Name)
		}
		azSeen[az.Name] = true
		for j, s := range az.Subnets {
			sp := fmt.Sprintf("%s.subnets[%d]", p, j)
			if !dnsLabel.MatchString(s.Name) {
				v.add(sp+".name", "subnet name %q: use lowercase letters, digits and '-'", s.Name)
			} else if bn := BridgeName(s.Name); len(bn) > MaxIfName {
				v.add(sp+".name", "subnet name %q makes the router bridge name %q, %d bytes; "+
					"interface names are at most %d", s.Name, bn, len(bn), MaxIfName)
			}
			if s.Role != "" && s.Role != "elb" && s.Role != "internal-elb" {
				v.add(sp+".role", "role %q: use elb (kubernetes.io/role/elb) or internal-elb", s.Role)
			}
			if _, dup := out[s.Name]; dup {
				v.add(sp+".name", "subnet %q is defined twice", s.Name)
			}
			switch {
			case !s.CIDR.IsValid() || !s.CIDR.Addr().Is4():
				v.add(sp+".cidr", "an IPv4 subnet CIDR is required")
				continue
			case s.CIDR.Masked() != s.CIDR:
				v.add(sp+".cidr", "%s is not a network address (did you mean %s?)", s.CIDR, s.CIDR.Masked())
			case s.CIDR.Bits() < 16 || s.CIDR.Bits() > 28:
				v.add(sp+".cidr", "%s: a subnet must be between /16 and /28, as in AWS", s.CIDR)
			case v.t.VPC.CIDR.IsValid() && !contains(v.t.VPC.CIDR, s.CIDR):
				v.add(sp+".cidr", "subnet %s is not inside the VPC CIDR %s", s.CIDR, v.t.VPC.CIDR)
			}
			for _, o := range all {
				if o.s.CIDR.Overlaps(s.CIDR) {
					v.add(sp+".cidr", "subnet %s overlaps subnet %q (%s) at %s", s.CIDR, o.s.Name, o.s.CIDR, o.path)
				}
			}
			all = append(all, struct {
				path string
				s    Subnet
			}{sp, s})
			out[s.Name] = s
		}
	}
	return out
}

func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// checkHostAddr checks an address AWS would let an instance or pod have.
func (v *validator) checkHostAddr(path string, a netip.Addr, s Subnet) bool {
	switch {
	case !a.IsValid():
		v.add(path, "an IPv4 address is required")
	case !s.CIDR.Contains(a):
		v.add(path, "%s is outside subnet %q (%s)", a, s.Name, s.CIDR)
	case Reserved(s.CIDR, a):
		v.add(path, "%s is reserved by AWS in subnet %s (the first four and the last address)", a, s.CIDR)
	default:
		return true
	}
	return false
}

func (v *validator) checkObjectName(path, name, kind string) bool {
	switch {
	case !dnsLabel.MatchString(name) || len(name) > 63:
		v.add(path, "%s name %q: use lowercase letters, digits and '-' (at most 63)", kind, name)
	case reservedNames[name]:
		v.add(path, "%s name %q is reserved for the lab's own %s namespace", kind, name, map[string]string{
			RouterName: "VPC router", GatewayName: "internet gateway", InternetName: "internet router"}[name])
	default:
		return true
	}
	return false
}

// nodes checks nodes and their ENIs; it returns the delegated /28s and
// the ENI each is delegated to.
func (v *validator) nodes(subnets map[string]Subnet, claim func(string, string, string), own func(string, netip.Addr, string)) map[netip.Prefix]string {
	delegated := map[netip.Prefix]string{}
	for i := range v.t.Nodes {
		n := &v.t.Nodes[i]
		p := fmt.Sprintf("nodes[%d]", i)
		if v.checkObjectName(p+".name", n.Name, "node") {
			claim(p+".name", n.Name, "node")
		}
		limits, known := InstanceTypes[n.InstanceType]
		if !known {
			v.add(p+".instanceType", "unknown instance type %q; known: %s", n.InstanceType, knownTypes())
		}
		if len(n.ENIs) == 0 {
			v.add(p+".enis", "a node needs at least its primary ENI (index 0)")
			continue
		}
		if known && len(n.ENIs) > limits.ENIs {
			v.add(p+".enis", "%d ENIs, but %s supports %d", len(n.ENIs), n.InstanceType, limits.ENIs)
		}
		idx := map[int]bool{}
		longName := false
		nodeAZ := ""
		for j := range n.ENIs {
			e := &n.ENIs[j]
			ep := fmt.Sprintf("%s.enis[%d]", p, j)
			if *e.Index < 0 || *e.Index > 31 || idx[*e.Index] {
				v.add(ep+".index", "device index %d is negative, too large or used twice", *e.Index)
				continue
			}
			idx[*e.Index] = true
			if port := RouterPortName(n.Name, *e.Index); len(port) > MaxIfName && !longName {
				longName = true
				v.add(p+".name", "node name %q makes the router port name %q, %d bytes; "+
					"interface names are at most %d: use a shorter node name", n.Name, port, len(port), MaxIfName)
			}
			s, ok := subnets[e.Subnet]
			if !ok {
				v.add(ep+".subnet", "unknown subnet %q", e.Subnet)
				continue
			}
			// An instance lives in one AZ and EC2 attaches only ENIs of
			// subnets in that AZ (AttachNetworkInterface).
			if nodeAZ == "" {
				nodeAZ = s.AZ
			} else if s.AZ != nodeAZ {
				v.add(ep+".subnet", "subnet %q is in AZ %s, but node %s is in %s; an ENI must be in its instance's AZ",
					s.Name, s.AZ, n.Name, nodeAZ)
			}
			if v.checkHostAddr(ep+".ip", e.IP, s) {
				own(ep+".ip", e.IP, fmt.Sprintf("node %s eth%d", n.Name, *e.Index))
			}
			for k, a := range e.SecondaryIPs {
				sp := fmt.Sprintf("%s.secondaryIPs[%d]", ep, k)
				if v.checkHostAddr(sp, a, s) {
					own(sp, a, fmt.Sprintf("node %s eth%d secondary IP", n.Name, *e.Index))
				}
			}
			for k, pf := range e.Prefixes {
				pp := fmt.Sprintf("%s.prefixes[%d]", ep, k)
				switch {
				case !v.t.VPC.PrefixDelegation:
					v.add(pp, "prefixes need vpc.prefixDelegation: true (ENABLE_PREFIX_DELEGATION)")
				case pf.Bits() != 28 || pf.Masked() != pf:
					v.add(pp, "%s: EC2 delegates aligned /28 prefixes", pf)
				case !contains(s.CIDR, pf):
					v.add(pp, "prefix %s is outside subnet %q (%s)", pf, s.Name, s.CIDR)
				case delegated[pf] != "":
					v.add(pp, "prefix %s is already delegated to %s", pf, delegated[pf])
				default:
					delegated[pf] = fmt.Sprintf("node %s eth%d", n.Name, *e.Index)
				}
			}
		}
		if !idx[0] {
			v.add(p+".enis", "no primary ENI: one ENI must have device index 0")
		}
	}
	return delegated
}

func (v *validator) pods(claim func(string, string, string), own func(string, netip.Addr, string)) {
	vethByNode := map[string]map[string]string{}
	used := map[string]int{} // IPv4 slots used per ENI, "node/index"
	for i := range v.t.Pods {
		pd := &v.t.Pods[i]
		p := fmt.Sprintf("pods[%d]", i)
		if v.checkObjectName(p+".name", pd.Name, "pod") {
			claim(p+".name", pd.Name, "pod")
		}
		if !dnsLabel.MatchString(pd.Namespace) {
			v.add(p+".namespace", "namespace %q is not a valid Kubernetes namespace name", pd.Namespace)
		}
		for j, port := range pd.Ports {
			pp := fmt.Sprintf("%s.ports[%d]", p, j)
			if port.Port < 1 || port.Port > 65535 {
				v.add(pp+".port", "port %d is outside 1..65535", port.Port)
			}
			if port.Protocol != "TCP" && port.Protocol != "UDP" {
				v.add(pp+".protocol", "protocol %q: use TCP or UDP", port.Protocol)
			}
		}
		n := v.t.Node(pd.Node)
		if n == nil {
			v.add(p+".node", "unknown node %q", pd.Node)
			continue
		}
		e := n.ENI(pd.ENI)
		if e == nil {
			v.add(p+".eni", "node %s has no ENI with device index %d", n.Name, pd.ENI)
			continue
		}
		s, ok := v.t.Subnet(e.Subnet)
		if !ok || !v.checkHostAddr(p+".ip", pd.IP, s) {
			continue
		}
		switch {
		case inPrefixes(e.Prefixes, pd.IP):
		case len(e.Prefixes) > 0 && !containsAddr(e.SecondaryIPs, pd.IP):
			v.add(p+".ip", "%s is in none of eth%d's delegated prefixes on node %s", pd.IP, pd.ENI, n.Name)
		case len(e.SecondaryIPs) > 0 && !containsAddr(e.SecondaryIPs, pd.IP):
			v.add(p+".ip", "%s is not a secondary IP of node %s eth%d", pd.IP, n.Name, pd.ENI)
		case len(e.SecondaryIPs) == 0:
			// An implicit secondary IP: it takes a slot and must be unique.
			own(p+".ip", pd.IP, "pod "+pd.Name)
			used[fmt.Sprintf("%s/%d", n.Name, pd.ENI)]++
		}
		veth := HostVethName(pd.Namespace, pd.Name)
		if vethByNode[n.Name] == nil {
			vethByNode[n.Name] = map[string]string{}
		}
		if prev, dup := vethByNode[n.Name][veth]; dup {
			v.add(p+".name", "host veth name %s collides with pod %s on node %s", veth, prev, n.Name)
		}
		vethByNode[n.Name][veth] = pd.Name
	}
	v.podIPsUnique()
	v.eniCapacity(used)
}

// podIPsUnique catches two pods given the same listed secondary IP.
func (v *validator) podIPsUnique() {
	seen := map[netip.Addr]string{}
	for i, pd := range v.t.Pods {
		if !pd.IP.IsValid() {
			continue
		}
		if prev, ok := seen[pd.IP]; ok {
			v.add(fmt.Sprintf("pods[%d].ip", i), "address %s is already used by pod %s", pd.IP, prev)
		}
		seen[pd.IP] = pd.Name
	}
}

func (v *validator) eniCapacity(implicit map[string]int) {
	for i, n := range v.t.Nodes {
		limits, ok := InstanceTypes[n.InstanceType]
		if !ok {
			continue
		}
		for j, e := range n.ENIs {
			slots := 1 + len(e.SecondaryIPs) + len(e.Prefixes) + implicit[fmt.Sprintf("%s/%d", n.Name, *e.Index)]
			if slots > limits.IPv4PerENI {
				v.add(fmt.Sprintf("nodes[%d].enis[%d]", i, j),
					"eth%d needs %d IPv4 slots (primary, secondary IPs and prefixes), but %s allows %d per ENI",
					*e.Index, slots, n.InstanceType, limits.IPv4PerENI)
			}
		}
	}
}

func (v *validator) hosts(subnets map[string]Subnet, claim func(string, string, string), own func(string, netip.Addr, string)) {
	for i, h := range v.t.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		if v.checkObjectName(p+".name", h.Name, "host") {
			claim(p+".name", h.Name, "host")
			if port := RouterPortName(h.Name, 0); len(port) > MaxIfName {
				v.add(p+".name", "host name %q makes the router port name %q, %d bytes; "+
					"interface names are at most %d", h.Name, port, len(port), MaxIfName)
			}
		}
		s, ok := subnets[h.Subnet]
		if !ok {
			v.add(p+".subnet", "unknown subnet %q", h.Subnet)
			continue
		}
		if v.checkHostAddr(p+".ip", h.IP, s) {
			own(p+".ip", h.IP, "host "+h.Name)
		}
	}
}

// internet checks the internet side: hosts on the internet LAN, Elastic
// IPs from the documentation range mapped to addresses the VPC has.
func (v *validator) internet(claim func(string, string, string), owners map[netip.Addr]string) {
	in := v.t.Internet
	if in == nil {
		return
	}
	seen := map[netip.Addr]string{}
	for i, h := range in.Hosts {
		p := fmt.Sprintf("internet.hosts[%d]", i)
		if v.checkObjectName(p+".name", h.Name, "internet host") {
			claim(p+".name", h.Name, "internet-host")
			if port := RouterPortName(h.Name, 0); len(port) > MaxIfName {
				v.add(p+".name", "name %q makes the internet port name %q, over %d bytes", h.Name, port, MaxIfName)
			}
		}
		switch {
		case !InternetLAN.Contains(h.IP):
			v.add(p+".ip", "%s: internet hosts live in %s (a documentation range)", h.IP, InternetLAN)
		case h.IP == InternetLAN.Addr().Next() || h.IP == InternetLAN.Addr().Next().Next():
			v.add(p+".ip", "%s is the internet router's or the gateway's address", h.IP)
		case seen[h.IP] != "":
			v.add(p+".ip", "address %s is already used by %s", h.IP, seen[h.IP])
		default:
			seen[h.IP] = h.Name
		}
	}
	if in.DNS != nil {
		names := map[string]bool{}
		for i, r := range in.DNS.Records {
			p := fmt.Sprintf("internet.dns.records[%d]", i)
			name := strings.ToLower(strings.TrimSuffix(r.Name, "."))
			switch {
			case !strings.Contains(name, ".") || r.Alias == "":
				v.add(p, "a record needs a dotted name and an alias (an Ingress or LoadBalancer Service)")
			case !validDNSName(name):
				v.add(p+".name", "%q is not a DNS name (labels of letters, digits and '-', at most 253 bytes)", r.Name)
			case names[name]:
				v.add(p+".name", "record %s is listed twice", r.Name)
			}
			names[name] = true
		}
	}
	for i, m := range in.PublicIPs {
		p := fmt.Sprintf("internet.publicIPs[%d]", i)
		switch {
		case !PublicRange.Contains(m.Public):
			v.add(p+".public", "%s: public IPs come from %s (a documentation range)", m.Public, PublicRange)
		case seen[m.Public] != "":
			v.add(p+".public", "public IP %s is mapped twice", m.Public)
		default:
			seen[m.Public] = "a public IP"
		}
		if owners[m.Private] == "" {
			v.add(p+".private", "%s is no ENI or host address of this VPC", m.Private)
		}
	}
}

func (v *validator) walks(objects map[string]string) {
	seen := map[string]bool{}
	for i, w := range v.t.Walks {
		p := fmt.Sprintf("walks[%d]", i)
		if !walkName.MatchString(w.Name) {
			v.add(p+".name", "walk name %q: use letters, digits and '-'", w.Name)
		} else if seen[w.Name] {
			v.add(p+".name", "walk %q is defined twice", w.Name)
		}
		seen[w.Name] = true
		switch w.Kind {
		case WalkState:
			continue
		case WalkControlPlane:
			v.controlPlaneWalk(p, w, objects)
			continue
		case WalkFlow, WalkDNS, WalkSpread, WalkChurn:
		default:
			v.add(p+".kind", "unknown walk kind %q (use flow, state, dns, spread or churn)", w.Kind)
			continue
		}
		ends := []struct{ key, name string }{{"from", w.From}}
		if w.Service == "" && w.LoadBalancer == "" && w.Kind == WalkFlow {
			ends = append(ends, struct{ key, name string }{"to", w.To})
		}
		for _, end := range ends {
			kind, _, _ := strings.Cut(objects[end.name], " ")
			if kind != "pod" && kind != "host" && kind != "internet-host" {
				v.add(p+"."+end.key, "%q is not a pod or host of this topology", end.name)
			}
		}
		if w.From == w.To && w.From != "" {
			v.add(p+".to", "a walk needs two different ends")
		}
		if (w.Kind == WalkSpread && w.Service == "" && w.LoadBalancer == "") || (w.Kind == WalkChurn && w.Service == "") {
			v.add(p+".service", "a %s walk needs a service", w.Kind)
		}
		if w.Kind == WalkDNS && w.Query == "" {
			v.add(p+".query", "a dns walk needs a query (a Service name)")
		}
		if w.Service != "" {
			v.walkService(p, w)
		}
		if w.Expect != "answer" && w.Expect != "drop" {
			v.add(p+".expect", "expect %q: use answer or drop", w.Expect)
		}
		switch w.Protocol {
		case "icmp", "tcp", "udp":
		default:
			v.add(p+".protocol", "protocol %q: use icmp, tcp or udp", w.Protocol)
		}
		if w.Port < 0 || w.Port > 65535 {
			v.add(p+".port", "port %d is outside 1..65535", w.Port)
		}
		v.walkExtras(p, w)
	}
}

// MaxConnections bounds a spread or churn walk: each connection is a real
// TCP or UDP exchange, and a few hundred already show every endpoint.
const MaxConnections = 1000

// walkExtras checks the fields only some walks use: connections, the load
// balancer AZ and the DNS name.
func (v *validator) walkExtras(p string, w Walk) {
	switch {
	case w.Kind == WalkSpread || w.Kind == WalkChurn:
		if w.Connections < 1 || w.Connections > MaxConnections {
			v.add(p+".connections", "%d connections: use 1..%d", w.Connections, MaxConnections)
		}
	case w.Connections != 0:
		v.add(p+".connections", "connections is for spread and churn walks, not %s", w.Kind)
	}
	if w.Via != "" && w.Service == "" {
		v.add(p+".via", "via picks the node whose NodePort a service walk uses; this walk has no service")
	}
	if w.Query != "" && w.Kind != WalkDNS {
		v.add(p+".query", "query is for dns walks, not %s", w.Kind)
	}
	if w.Path != "" && (w.LoadBalancer == "" || !strings.HasPrefix(w.Path, "/")) {
		v.add(p+".path", "path %q: an ALB walk's HTTP path starts with '/' and needs a loadBalancer", w.Path)
	}
	if w.Protocol == "icmp" && w.Port != 0 {
		v.add(p+".port", "an icmp walk has no port")
	}
	if w.AZ != "" {
		known := false
		for _, az := range v.t.AZs {
			known = known || az.Name == w.AZ
		}
		switch {
		case w.LoadBalancer == "":
			v.add(p+".az", "az picks a load balancer node; this walk has no loadBalancer")
		case !known:
			v.add(p+".az", "unknown AZ %q", w.AZ)
		}
	}
	if w.DNSName != "" {
		in := v.t.Internet
		found := false
		if in != nil && in.DNS != nil {
			for _, r := range in.DNS.Records {
				found = found || strings.EqualFold(strings.TrimSuffix(r.Name, "."), strings.TrimSuffix(w.DNSName, "."))
			}
		}
		if !found {
			v.add(p+".dnsName", "%q is no record of internet.dns", w.DNSName)
		}
	}
}

// walkService checks a walk's Service, port and node.
func (v *validator) walkService(p string, w Walk) {
	ns, name, ok := strings.Cut(w.Service, "/")
	if !ok {
		ns, name = DefaultNamespace, w.Service
	}
	var port *corev1.ServicePort
	found := false
	for _, s := range v.t.Manifests.Services {
		if s.Namespace != ns || s.Name != name {
			continue
		}
		found = true
		for i := range s.Spec.Ports {
			if int(s.Spec.Ports[i].Port) == w.Port {
				port = &s.Spec.Ports[i]
			}
		}
	}
	switch {
	case !found:
		v.add(p+".service", "no Service %s/%s in this topology", ns, name)
	case port == nil:
		v.add(p+".port", "Service %s/%s has no port %d", ns, name, w.Port)
	case w.Via != "" && port.NodePort == 0:
		v.add(p+".via", "Service %s/%s port %d has no NodePort", ns, name, w.Port)
	case strings.ToUpper(w.Protocol) != string(port.Protocol) && w.Kind != WalkDNS:
		v.add(p+".protocol", "Service %s/%s port %d is %s", ns, name, w.Port, port.Protocol)
	}
	if w.Via != "" && v.t.Node(w.Via) == nil {
		v.add(p+".via", "unknown node %q", w.Via)
	}
}

// validDNSName checks a lower-cased name without the trailing dot.
func validDNSName(name string) bool {
	if len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if len(l) > 63 || !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func knownTypes() string {
	names := make([]string, 0, len(InstanceTypes))
	for k := range InstanceTypes {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
