package spec

import (
	"crypto/sha1" //nolint:gosec // the VPC CNI's veth names are sha1, not a security use
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
)

// NSPrefix starts every network namespace the lab creates. A namespace is
// "lc.<lab>.<object>": lab and object names are DNS labels without dots, so
// the name splits back unambiguously.
const NSPrefix = "lc."

// RouterName is the object name of the VPC router namespace.
const RouterName = "vpc"

// PodGateway is the VPC CNI's fixed pod gateway (CalculatePodIPv4GatewayIP(0)).
var PodGateway = netip.MustParseAddr("169.254.1.1")

// NSName is the kernel name of an object's network namespace.
func NSName(lab, object string) string { return NSPrefix + lab + "." + object }

// HostVethName is the VPC CNI's host-side veth name: "eni" and the first 11
// hex digits of sha1("<namespace>.<pod>") (names.go GeneratePodHostVethName).
func HostVethName(namespace, pod string) string {
	h := sha1.Sum([]byte(namespace + "." + pod)) //nolint:gosec
	return "eni" + hex.EncodeToString(h[:])[:11]
}

// ENIName is the node-side name of ENI device index i.
func ENIName(i int) string { return fmt.Sprintf("eth%d", i) }

// RouterPortName is the VPC router's bridge port for an instance's ENI, so a
// capture on the router names the instance it faces.
func RouterPortName(instance string, eni int) string { return fmt.Sprintf("%s.eth%d", instance, eni) }

// BridgeName is the VPC router's bridge for a subnet.
func BridgeName(subnet string) string { return "br-" + subnet }

// MAC derives a stable, locally administered unicast MAC from a key, so the
// same topology always gives the same kernel state and walks can predict
// every MAC. first is the first octet (it must have bit 1 set, bit 0 clear).
func MAC(first byte, key string) net.HardwareAddr {
	h := sha1.Sum([]byte(key)) //nolint:gosec
	return net.HardwareAddr{first, h[0], h[1], h[2], h[3], h[4]}
}

// First octets: 0a like real ENI MACs; the others make a MAC's role visible
// in a capture.
const (
	macENI      = 0x0a
	macPod      = 0x02
	macHostVeth = 0x06
	macRouter   = 0x0e
	macPort     = 0x12
)

// ENIMAC is the MAC of an instance's ENI.
func ENIMAC(instance string, eni int) net.HardwareAddr {
	return MAC(macENI, fmt.Sprintf("eni/%s/%d", instance, eni))
}

// PodMAC is the MAC of a pod's eth0.
func PodMAC(namespace, pod string) net.HardwareAddr {
	return MAC(macPod, "pod/"+namespace+"/"+pod)
}

// HostVethMAC is the MAC of a pod's host-side veth, the MAC of the pod's
// static 169.254.1.1 neighbour entry.
func HostVethMAC(namespace, pod string) net.HardwareAddr {
	return MAC(macHostVeth, "veth/"+namespace+"/"+pod)
}

// RouterMAC is the VPC router's MAC on a subnet (the gateway's MAC).
func RouterMAC(subnet string) net.HardwareAddr { return MAC(macRouter, "router/"+subnet) }

// RouterPortMAC is the MAC of the router's side of an ENI's veth; it never
// appears in frames because the port is enslaved to the subnet's bridge.
func RouterPortMAC(instance string, eni int) net.HardwareAddr {
	return MAC(macPort, fmt.Sprintf("port/%s/%d", instance, eni))
}

// Gateway is the subnet's router address, base+1 (GetIPv4Gateway).
func Gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// Reserved reports whether AWS reserves a in subnet p: the network address,
// the router (.1), DNS (.2), the future-use address (.3) and the last address.
func Reserved(p netip.Prefix, a netip.Addr) bool {
	base := p.Masked().Addr()
	for i := 0; i < 4; i++ {
		if a == base {
			return true
		}
		base = base.Next()
	}
	return a == lastAddr(p)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// DefaultServiceCIDR is the block EKS picks when none is given: 172.20.0.0/16
// if the VPC is in 10.0.0.0/8, otherwise 10.100.0.0/16.
func DefaultServiceCIDR(vpc netip.Prefix) netip.Prefix {
	if vpc.IsValid() && netip.MustParsePrefix("10.0.0.0/8").Contains(vpc.Addr()) {
		return netip.MustParsePrefix("172.20.0.0/16")
	}
	return netip.MustParsePrefix("10.100.0.0/16")
}

// Limits is what EC2 allows an instance type: ENIs and IPv4 addresses per ENI.
type Limits struct{ ENIs, IPv4PerENI int }

// InstanceTypes are the EC2 limits (network card 0) of common node types.
var InstanceTypes = map[string]Limits{
	"t3.small": {3, 4}, "t3.medium": {3, 6}, "t3.large": {3, 12}, "t3.xlarge": {4, 15},
	"m5.large": {3, 10}, "m5.xlarge": {4, 15}, "m5.2xlarge": {4, 15}, "m5.4xlarge": {8, 30},
	"m5.8xlarge": {8, 30}, "m5.16xlarge": {15, 50}, "m5.24xlarge": {15, 50},
	"c5.large": {3, 10}, "c5.xlarge": {4, 15}, "c5.4xlarge": {8, 30},
	"m6i.large": {3, 10}, "m6i.xlarge": {4, 15}, "m6i.4xlarge": {8, 30},
}

// MaxPods is the EKS max-pods formula: ENIs x (IPv4 per ENI - 1) + 2.
func (l Limits) MaxPods() int { return l.ENIs*(l.IPv4PerENI-1) + 2 }

// Node returns the named node or nil.
func (t *Topology) Node(name string) *Node {
	for i := range t.Nodes {
		if t.Nodes[i].Name == name {
			return &t.Nodes[i]
		}
	}
	return nil
}

// Pod returns the named pod or nil.
func (t *Topology) Pod(name string) *Pod {
	for i := range t.Pods {
		if t.Pods[i].Name == name {
			return &t.Pods[i]
		}
	}
	return nil
}

// Host returns the named host or nil.
func (t *Topology) Host(name string) *Host {
	for i := range t.Hosts {
		if t.Hosts[i].Name == name {
			return &t.Hosts[i]
		}
	}
	return nil
}

// Subnet returns the named subnet.
func (t *Topology) Subnet(name string) (Subnet, bool) {
	for _, az := range t.AZs {
		for _, s := range az.Subnets {
			if s.Name == name {
				s.AZ = az.Name
				return s, true
			}
		}
	}
	return Subnet{}, false
}

// Subnets lists every subnet in file order.
func (t *Topology) Subnets() []Subnet {
	var out []Subnet
	for _, az := range t.AZs {
		for _, s := range az.Subnets {
			s.AZ = az.Name
			out = append(out, s)
		}
	}
	return out
}

// SubnetOf returns the subnet containing a, if any.
func (t *Topology) SubnetOf(a netip.Addr) (Subnet, bool) {
	for _, s := range t.Subnets() {
		if s.CIDR.Contains(a) {
			return s, true
		}
	}
	return Subnet{}, false
}

// ENI returns the ENI with device index i or nil.
func (n *Node) ENI(i int) *ENI {
	for j := range n.ENIs {
		if *n.ENIs[j].Index == i {
			return &n.ENIs[j]
		}
	}
	return nil
}

// RouteTable is the VPC CNI's table for an ENI: main for eth0, device
// index + 1 for the others (CalculateRouteTableId on network card 0).
func RouteTable(eni int) int {
	if eni == 0 {
		return 254
	}
	return eni + 1
}

// Walk returns the named walk or nil.
func (t *Topology) Walk(name string) *Walk {
	for i := range t.Walks {
		if t.Walks[i].Name == name {
			return &t.Walks[i]
		}
	}
	return nil
}

// Objects lists the names of every namespace the lab creates, router first.
func (t *Topology) Objects() []string {
	out := []string{RouterName}
	for _, n := range t.Nodes {
		out = append(out, n.Name)
	}
	for _, p := range t.Pods {
		out = append(out, p.Name)
	}
	for _, h := range t.Hosts {
		out = append(out, h.Name)
	}
	for _, n := range t.NATGateways {
		out = append(out, n.Name)
	}
	out = append(out, t.ControlPlaneObjects()...)
	if t.Internet != nil {
		out = append(out, GatewayName, InternetName)
		for _, h := range t.Internet.Hosts {
			out = append(out, h.Name)
		}
	}
	return out
}

// InternetHost returns the named internet host or nil.
func (t *Topology) InternetHost(name string) *InternetHost {
	if t.Internet == nil {
		return nil
	}
	for i := range t.Internet.Hosts {
		if t.Internet.Hosts[i].Name == name {
			return &t.Internet.Hosts[i]
		}
	}
	return nil
}

// PublicIPOf returns the Elastic IP mapped to a private address.
func (t *Topology) PublicIPOf(private netip.Addr) (netip.Addr, bool) {
	if t.Internet == nil {
		return netip.Addr{}, false
	}
	for _, m := range t.Internet.PublicIPs {
		if m.Private == private {
			return m.Public, true
		}
	}
	return netip.Addr{}, false
}

// MACs of the internet side.
var (
	// GatewayVPCMAC is the internet gateway's side of the link to the router.
	GatewayVPCMAC = MAC(0x0e, "igw/vpc")
	// RouterGatewayMAC is the router's side of that link.
	RouterGatewayMAC = MAC(0x0e, "router/igw")
	// GatewayInternetMAC is the gateway's MAC on the internet LAN.
	GatewayInternetMAC = MAC(0x0e, "igw/internet")
	// InternetRouterMAC is the internet router's MAC on the internet LAN.
	InternetRouterMAC = MAC(0x0e, "internet/router")
)
