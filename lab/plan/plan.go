// Package plan renders a validated topology into the complete kernel state
// the lab must create: namespaces, links, addresses, routes, rules,
// neighbours, sysctls and iptables payloads. It is pure, so the state is
// unit-tested without root, and deterministic: the same topology always
// renders to the same plan, which is what the kernel ends up holding.
package plan

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/spec"
)

// Role says what a namespace stands for.
type Role string

// Roles.
const (
	RoleRouter Role = "router"
	RoleNode   Role = "node"
	RolePod    Role = "pod"
	RoleHost   Role = "host"

	RoleGateway      Role = "internet-gateway"
	RoleInternet     Role = "internet-router"
	RoleInternetHost Role = "internet-host"
)

// Plan is everything one lab creates.
type Plan struct {
	Lab        string
	Namespaces []*Namespace // router first, then nodes, pods, hosts
	Veths      []Veth       // created after all namespaces exist
}

// Namespace is one network namespace and the state inside it.
type Namespace struct {
	Name   string // kernel name, lc.<lab>.<object>
	Object string // topology name
	Role   Role
	Node   string // for a pod: its node
	// Sysctls are written in order, before links come up.
	Sysctls []Sysctl
	Bridges []Bridge
	Addrs   []Addr
	Routes  []Route
	Rules   []Rule
	Neighs  []Neigh
	// Iptables is an iptables-restore payload applied once, or "".
	Iptables string
	// NFT is an `nft -f` program applied once after Iptables, or "": a
	// node's kube-proxy table in nftables mode, then aws-node's table ip
	// aws-cni (VPC CNI v1.23+ on nf_tables nodes).
	NFT string
}

// Veth is a veth pair between two namespaces.
type Veth struct {
	A, B End
}

// End is one side of a veth.
type End struct {
	NS   string // kernel namespace name
	Name string
	MAC  net.HardwareAddr
	MTU  int
	// Master is the bridge this end is enslaved to ("" for none). Bridge
	// ports have learning and unicast flooding off: the VPC knows where every
	// ENI is and never floods.
	Master string
}

// Bridge is a subnet on the VPC router.
type Bridge struct {
	Name string
	MAC  net.HardwareAddr
	MTU  int
	// FDB pins each ENI MAC to its port, as the VPC fabric knows ENI locations.
	FDB []FDB
}

// FDB is a static bridge forwarding entry.
type FDB struct {
	MAC  net.HardwareAddr
	Port string
}

// Sysctl is a key under /proc/sys, written with slashes because interface
// names may hold dots, and its value. Optional keys (a module may be
// absent) are skipped when the kernel does not have them. AfterIptables
// keys are written once the namespace's iptables are restored: conntrack's
// keys exist only once the module is loaded, which the restore ensures.
type Sysctl struct {
	Key, Value    string
	Optional      bool
	AfterIptables bool
}

// Addr is an address on a link.
type Addr struct {
	Dev    string
	Prefix netip.Prefix
}

// Route is a route; Table 0 means main. Delete marks a kernel-created route
// that must be removed (the secondary ENI's subnet route in main).
type Route struct {
	Dst    netip.Prefix
	Gw     netip.Addr
	Dev    string
	Link   bool // scope link
	Src    netip.Addr
	Table  int
	Delete bool
	// Unreachable is an unreachable route (no Gw, no Dev): a VPC route
	// table without a route for Dst (see natgw.go).
	Unreachable bool
}

// Rule is a policy routing rule.
type Rule struct {
	Priority int
	Src, Dst netip.Prefix
	Mark     uint32
	Mask     uint32
	IIF      string // incoming interface, if set
	Table    int
}

// Neigh is a neighbour entry: PERMANENT, or a proxy entry (Proxy set, no MAC).
type Neigh struct {
	Dev   string
	IP    netip.Addr
	MAC   net.HardwareAddr
	Proxy bool
}

// Build renders the plan for topology t under lab name lab, for a node
// kernel without optional features (Kernel{}).
func Build(t *spec.Topology, lab string) *Plan {
	return BuildFor(t, lab, Kernel{})
}

// BuildFor renders the plan for nodes whose kernel the caller probed.
func BuildFor(t *spec.Topology, lab string, k Kernel) *Plan {
	p := &Plan{Lab: lab}
	p.router(t)
	sps := cluster.Endpoints(t)
	for i := range t.Nodes {
		p.node(t, &t.Nodes[i], sps, k)
	}
	for i := range t.Pods {
		p.pod(t, &t.Pods[i])
	}
	for i := range t.Hosts {
		p.host(t, &t.Hosts[i])
	}
	m := LBModel(t)
	p.loadBalancers(t, m)
	p.internet(t, append(publicIPs(t, m), controlPlanePublicIPs(t)...))
	p.controlPlane(t)
	return p
}

// NS returns the namespace for a topology object, or nil.
func (p *Plan) NS(object string) *Namespace {
	for _, n := range p.Namespaces {
		if n.Object == object {
			return n
		}
	}
	return nil
}

// NSNames lists the kernel names of every namespace in the plan.
func (p *Plan) NSNames() []string {
	out := make([]string, len(p.Namespaces))
	for i, n := range p.Namespaces {
		out[i] = n.Name
	}
	return out
}

func (p *Plan) add(object string, role Role) *Namespace {
	n := &Namespace{Name: spec.NSName(p.Lab, object), Object: object, Role: role}
	p.Namespaces = append(p.Namespaces, n)
	return n
}

// router is the VPC's implicit router: one bridge per subnet holding the
// subnet's .1, forwarding between subnets, never sending ICMP redirects.
func (p *Plan) router(t *spec.Topology) {
	r := p.add(spec.RouterName, RoleRouter)
	r.Sysctls = []Sysctl{
		{Key: "net/ipv4/ip_forward", Value: "1"},
		{Key: "net/ipv4/conf/all/send_redirects", Value: "0"},
		{Key: "net/ipv4/conf/default/send_redirects", Value: "0"},
		{Key: "net/ipv4/conf/all/rp_filter", Value: "0"},
		{Key: "net/ipv4/conf/default/rp_filter", Value: "0"},
	}
	for _, s := range t.Subnets() {
		br := spec.BridgeName(s.Name)
		r.Bridges = append(r.Bridges, Bridge{Name: br, MAC: spec.RouterMAC(s.Name), MTU: t.VPC.MTU})
		r.Addrs = append(r.Addrs, Addr{Dev: br, Prefix: netip.PrefixFrom(spec.Gateway(s.CIDR), s.CIDR.Bits())})
	}
	// The router never runs iptables on bridged frames: no VPC filtering
	// happens between ENIs of one subnet.
	r.Sysctls = append(r.Sysctls, Sysctl{Key: "net/bridge/bridge-nf-call-iptables", Value: "0", Optional: true})
}

func (p *Plan) bridge(subnet string) *Bridge {
	r := p.Namespaces[0]
	for i := range r.Bridges {
		if r.Bridges[i].Name == spec.BridgeName(subnet) {
			return &r.Bridges[i]
		}
	}
	panic("plan: unknown subnet " + subnet) // Validate guarantees it exists
}

// attach connects an instance's ENI to its subnet's bridge on the router.
func (p *Plan) attach(t *spec.Topology, ns *Namespace, instance string, eni int, subnet string) {
	mac := spec.ENIMAC(instance, eni)
	port := spec.RouterPortName(instance, eni)
	p.Veths = append(p.Veths, Veth{
		A: End{NS: ns.Name, Name: spec.ENIName(eni), MAC: mac, MTU: t.VPC.MTU},
		B: End{NS: p.Namespaces[0].Name, Name: port, MAC: spec.RouterPortMAC(instance, eni), MTU: t.VPC.MTU,
			Master: spec.BridgeName(subnet)},
	})
	br := p.bridge(subnet)
	br.FDB = append(br.FDB, FDB{MAC: mac, Port: port})
}

// node renders a worker: ENIs as the OS and ipamd configure them, and the
// VPC CNI's node-wide rules, sysctls and iptables.
func (p *Plan) node(t *spec.Topology, n *spec.Node, sps []cluster.ServicePort, k Kernel) {
	ns := p.add(n.Name, RoleNode)
	enis := append([]spec.ENI(nil), n.ENIs...)
	sort.Slice(enis, func(i, j int) bool { return *enis[i].Index < *enis[j].Index })
	ns.Sysctls = nodeSysctls(enis)
	for _, e := range enis {
		idx := *e.Index
		dev := spec.ENIName(idx)
		s, _ := t.Subnet(e.Subnet)
		gw := spec.Gateway(s.CIDR)
		p.attach(t, ns, n.Name, idx, e.Subnet)
		ns.Addrs = append(ns.Addrs, Addr{Dev: dev, Prefix: netip.PrefixFrom(e.IP, s.CIDR.Bits())})
		// The fabric delivers packets for the ENI's secondary IPs to it; the
		// lab makes the ENI answer ARP for them (proxy_delay 0: no 0.8 s wait).
		ns.Sysctls = append(ns.Sysctls, Sysctl{Key: "net/ipv4/neigh/" + dev + "/proxy_delay", Value: "0"})
		if idx == 0 {
			// DHCP on the primary ENI: the subnet route and the default route.
			ns.Routes = append(ns.Routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: dev})
			continue
		}
		// setupENINetwork: table device+1 with exactly two routes, the
		// subnet route removed from main, and rule 32765 for the ENI's IP.
		table := spec.RouteTable(idx)
		ns.Routes = append(ns.Routes,
			Route{Dst: netip.PrefixFrom(gw, 32), Dev: dev, Link: true, Table: table},
			Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: dev, Table: table},
			Route{Dst: s.CIDR, Dev: dev, Link: true, Src: e.IP, Delete: true},
		)
		ns.Rules = append(ns.Rules, Rule{Priority: 32765, Src: netip.PrefixFrom(e.IP, 32), Table: table})
	}
	// SetupHostNetwork: NodePort and SNAT replies marked 0x80 use main.
	ns.Rules = append(ns.Rules, Rule{Priority: 1024, Mark: 0x80, Mask: 0x80, Table: 254})
	primary := n.ENI(0)
	// aws-node: iptables rules and, v1.23+ on nf_tables, its own nft table.
	awsIptables, awsNFT := VPCCNINode(t.VPC.CIDR, primary.IP, spec.ENIName(0), t.Iptables, t.NodeVPCCNI(n.Name))
	if t.NFTablesMode() {
		// kube-proxy writes no iptables rule and no route_localnet (its
		// nftables NodePorts never answer on 127.0.0.1); kubelet's
		// KUBE-FIREWALL, which kube-proxy's iptables mode duplicates, stays;
		// aws-node's rules are as in iptables mode.
		ns.Sysctls = slices.DeleteFunc(ns.Sysctls, func(s Sysctl) bool { return s.Key == routeLocalnet })
		ns.Iptables = mergeRestore(KubeletChains(), KubeletFirewall(), awsIptables)
		ns.NFT = KubeProxyNFT(t, n.Name, sps) + awsNFT
		return
	}
	// kubelet starts first and creates its chains; kube-proxy prepends its
	// jumps; aws-node appends its rules.
	ns.Iptables = mergeRestore(KubeletChains(), KubeProxyRules(t, n.Name, sps, k), awsIptables)
	ns.NFT = awsNFT
}

// KubeProxyNFT is kube-proxy's first full sync on a node in nftables mode:
// the transaction that creates its "ip kube-proxy" table, as `nft -f` input.
func KubeProxyNFT(t *spec.Topology, node string, sps []cluster.ServicePort) string {
	tx, err := kubeproxy.RenderNFTTransaction(cluster.NFTProxyConfig(t, node), cluster.ProxyServices(sps, node))
	if err != nil {
		panic(fmt.Sprintf("plan: kube-proxy nftables render on %s: %v", node, err)) // validation guarantees valid input
	}
	return tx.String()
}

// KubeProxyRules is kube-proxy's first full sync on a node, with the jumps
// from the built-in chains it ensures on start.
func KubeProxyRules(t *spec.Topology, node string, sps []cluster.ServicePort, k Kernel) string {
	cfg := cluster.ProxyConfig(t, node)
	cfg.NFAcct = k.NFAcct
	payload, err := kubeproxy.Render(cfg, cluster.ProxyServices(sps, node))
	if err != nil {
		panic(fmt.Sprintf("plan: kube-proxy render on %s: %v", node, err)) // validation guarantees valid input
	}
	initial, err := kubeproxy.InitialRestore(payload)
	if err != nil {
		panic(fmt.Sprintf("plan: kube-proxy jumps on %s: %v", node, err))
	}
	return string(initial)
}

// pod renders a pod's namespace and the host side the VPC CNI adds for it.
func (p *Plan) pod(t *spec.Topology, pd *spec.Pod) {
	ns := p.add(pd.Name, RolePod)
	ns.Node = pd.Node
	node := p.NS(pd.Node)
	veth := spec.HostVethName(pd.Namespace, pd.Name)
	vethMAC := spec.HostVethMAC(pd.Namespace, pd.Name)
	p.Veths = append(p.Veths, Veth{
		A: End{NS: ns.Name, Name: "eth0", MAC: spec.PodMAC(pd.Namespace, pd.Name), MTU: t.VPC.MTU},
		B: End{NS: node.Name, Name: veth, MAC: vethMAC, MTU: t.VPC.MTU},
	})
	gw := netip.PrefixFrom(spec.PodGateway, 32)
	ns.Routes = []Route{
		{Dst: gw, Dev: "eth0", Link: true},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: spec.PodGateway, Dev: "eth0"},
	}
	ns.Addrs = []Addr{{Dev: "eth0", Prefix: netip.PrefixFrom(pd.IP, 32)}}
	ns.Neighs = []Neigh{{Dev: "eth0", IP: spec.PodGateway, MAC: vethMAC}}
	// A new namespace copies the host's IPv4 conf/all settings; pin the
	// kernel default so a packet arriving with the pod's own address as
	// its source (an NLB hairpin) is dropped as a martian on any host.
	ns.Sysctls = []Sysctl{
		{Key: "net/ipv4/conf/all/accept_local", Value: "0"},
		{Key: "net/ipv4/conf/eth0/accept_local", Value: "0"},
		// The runtime creates the pod's namespace on an AL2023 node, so it
		// copies that node's all and default; eth0 takes default's value.
		{Key: "net/ipv4/conf/all/rp_filter", Value: amiRPFilterAll},
		{Key: "net/ipv4/conf/default/rp_filter", Value: amiRPFilterIf},
		{Key: "net/ipv4/conf/eth0/rp_filter", Value: amiRPFilterIf},
	}

	host := netip.PrefixFrom(pd.IP, 32)
	// The host veth is a new interface on the node: it takes default's
	// rp_filter and systemd's udev rule writes the wildcard value again.
	node.Sysctls = append(node.Sysctls, Sysctl{Key: "net/ipv4/conf/" + veth + "/rp_filter", Value: amiRPFilterIf})
	node.Routes = append(node.Routes, Route{Dst: host, Dev: veth, Link: true})
	node.Rules = append(node.Rules, Rule{Priority: 512, Dst: host, Table: 254})
	if pd.ENI != 0 {
		node.Rules = append(node.Rules, Rule{Priority: 1536, Src: host, Table: spec.RouteTable(pd.ENI)})
	}
	node.Neighs = append(node.Neighs, Neigh{Dev: spec.ENIName(pd.ENI), IP: pd.IP, Proxy: true})
}

// PodPlan is the part of a plan one pod adds: its namespace, its veth, and
// the node's share (the /32 route, rules 512 and 1536, the proxy entry),
// as a namespace entry for the node holding only those. Used when a pod
// starts in a lab that is already up.
func PodPlan(t *spec.Topology, lab, pod string) (podNS *Namespace, veth Veth, node *Namespace) {
	pd := t.Pod(pod)
	p := &Plan{Lab: lab}
	p.add(pd.Node, RoleNode)
	p.pod(t, pd)
	return p.Namespaces[1], p.Veths[0], p.Namespaces[0]
}

// host renders an instance outside the cluster with one ENI.
func (p *Plan) host(t *spec.Topology, h *spec.Host) {
	ns := p.add(h.Name, RoleHost)
	s, _ := t.Subnet(h.Subnet)
	p.attach(t, ns, h.Name, 0, h.Subnet)
	ns.Sysctls = []Sysctl{{Key: "net/ipv4/conf/all/arp_ignore", Value: "1"}}
	ns.Addrs = []Addr{{Dev: "eth0", Prefix: netip.PrefixFrom(h.IP, s.CIDR.Bits())}}
	ns.Routes = []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: spec.Gateway(s.CIDR), Dev: "eth0"}}
}
