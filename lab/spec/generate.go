package spec

import (
	"fmt"
	"math/rand"
	"net/netip"
	"sort"
	"strings"
)

// Generate builds a valid topology of nodes x podsPerNode spread over azs
// AZs (one /19 subnet each in 10.0.0.0/16), for benchmarks and scale tests.
// Nodes are m5.4xlarge (8 ENIs of 30 IPv4 addresses); pods fill eth0, then
// eth1, and so on, 29 to an ENI, so large labs exercise secondary ENIs.
func Generate(name string, nodes, podsPerNode, azs int) (*Topology, error) {
	if nodes < 1 || podsPerNode < 0 || azs < 1 || azs > 8 {
		return nil, fmt.Errorf("generate: need nodes >= 1, pods >= 0 and 1..8 AZs")
	}
	const perENI = 29
	enis := max(1, (podsPerNode+perENI-1)/perENI)
	if enis > 8 {
		return nil, fmt.Errorf("generate: %d pods per node need %d ENIs; m5.4xlarge has 8", podsPerNode, enis)
	}
	t := &Topology{Name: name, Description: fmt.Sprintf("generated: %d nodes x %d pods", nodes, podsPerNode),
		VPC: VPC{CIDR: netip.MustParsePrefix("10.0.0.0/16")}, File: "(generated)"}
	next := make([]netip.Addr, azs)
	for i := 0; i < azs; i++ {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(32 * i), 0}), 19)
		t.AZs = append(t.AZs, AZ{Name: fmt.Sprintf("az%d", i+1), Subnets: []Subnet{{Name: fmt.Sprintf("s%d", i+1), CIDR: cidr}}})
		next[i] = cidr.Addr().Next().Next().Next().Next() // past the AWS-reserved four
	}
	alloc := func(az int) netip.Addr {
		a := next[az]
		next[az] = a.Next()
		return a
	}
	for n := 0; n < nodes; n++ {
		az := n % azs
		node := Node{Name: fmt.Sprintf("n%d", n), InstanceType: "m5.4xlarge"}
		for e := 0; e < enis; e++ {
			idx := e
			node.ENIs = append(node.ENIs, ENI{Index: &idx, Subnet: t.AZs[az].Subnets[0].Name, IP: alloc(az)})
		}
		t.Nodes = append(t.Nodes, node)
		for p := 0; p < podsPerNode; p++ {
			t.Pods = append(t.Pods, Pod{Name: fmt.Sprintf("p%d-%d", n, p), Node: node.Name, ENI: p / perENI, IP: alloc(az),
				Labels: map[string]string{"app": "bench"}})
		}
	}
	if nodes > 1 && podsPerNode > 0 {
		last := nodes - 1
		t.Walks = []Walk{
			{Name: "same-node", From: "p0-0", To: fmt.Sprintf("p0-%d", podsPerNode-1), Protocol: "tcp"},
			{Name: "cross-node", From: "p0-0", To: fmt.Sprintf("p%d-%d", last, podsPerNode-1), Protocol: "tcp"},
		}
	}
	t.applyDefaults()
	if errs := t.Validate(); errs != nil {
		return nil, errs
	}
	return t, nil
}

// GeneratedSeeds are the seeds the unit tests and the e2e suite run;
// together they hold every feature the generator varies (a unit test
// checks that).
var GeneratedSeeds = []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}

// Random writes the topology of a seed as the YAML a user writes (the lab
// document, then Kubernetes manifests), and LoadRandom parses it through the
// normal loader, so a failing seed can print exactly what it ran. The same
// seed always gives the same text. The topologies vary what the lab models
// (address plans, AZs, ENIs and device indexes, prefix delegation, load
// balancer subnets holding pods, NLBs and ALBs of every kind, the internet,
// private subnets behind a NAT gateway with aws-node's SNAT settings)
// and carry a walk for every path kind they contain. They never use what
// the lab rejects: ALB instance targets, UDP load balancer walks, and
// internet clients of a load balancer without dnsName.
func Random(seed int64) []byte {
	g := &gen{r: rand.New(rand.NewSource(seed)), seed: seed, alloc: map[string]netip.Addr{}}
	g.build()
	return []byte(g.out.String())
}

// LoadRandom is Random parsed and validated by Parse.
func LoadRandom(seed int64) (*Topology, []byte, error) {
	data := Random(seed)
	t, err := Parse(fmt.Sprintf("seed-%d.yaml", seed), fmt.Sprintf("gen-%d", seed), data)
	return t, data, err
}

type genSubnet struct {
	name, role string
	cidr       netip.Prefix
	az         int
	prefixes   int // /28s delegated so far, taken from the top down
}

type genENI struct {
	index  int
	subnet *genSubnet
	ip     netip.Addr
	prefix netip.Prefix // prefix delegation; invalid when none
	next   int          // next pod address in prefix
}

type genNode struct {
	name, typ string
	az        int
	enis      []*genENI
	public    netip.Addr
	// aws-node's SNAT settings on a node behind the NAT gateway (walks
	// D3-external and D3-exclude).
	externalSNAT, excludeSNAT bool
}

// genNAT is a NAT gateway in a public subnet of its own, the default route
// of the private subnets.
type genNAT struct {
	s      *genSubnet
	ip     netip.Addr
	public netip.Addr
}

type genPod struct {
	name, app string
	node      *genNode
	eni       *genENI
	ip        netip.Addr
}

type genLB struct {
	name     string // the Service or Ingress
	alb      bool
	internet bool
	// NLB
	ip, preserve, local, udp bool
	// ALB
	crossZoneOff bool
	def          string // defaultBackend Service, or ""
	paths        []genPath
	app          string // the pods an NLB selects
}

type genHost struct {
	name string
	s    *genSubnet
	ip   netip.Addr
}

type genPath struct{ path, typ, svc string }

type gen struct {
	r        *rand.Rand
	seed     int64
	out      strings.Builder
	pd       bool
	vpc      netip.Prefix
	azs      []string
	subnets  []*genSubnet
	alloc    map[string]netip.Addr
	nodes    []*genNode
	pods     []*genPod
	hosts    []genHost
	lbs      []*genLB
	internet bool
	api      []string // nodes of the api Deployment
	solo     bool
	udp      bool // web's Service has a UDP port
	nodePort string
	walks    []string
	// slots are the subnet-sized blocks of the VPC not handed out yet.
	slots []int
	sbits int
	nat   *genNAT
	// private are the AZs whose node subnets route to the NAT gateway.
	private map[int]bool
}

// natSalt keeps the NAT gateway's choices off the main random stream, so
// the seeds that get none generate what they did before NAT gateways.
const natSalt = 0x6e617467

// excludedInternet is the internet hosts' range, what a node with
// AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS excludes.
const excludedInternet = "198.51.100.0/24"

func (g *gen) pick(n int) int { return g.r.Intn(n) }
func (g *gen) coin(p float64) bool {
	return g.r.Float64() < p
}

// addr is the next free address of a subnet, from the bottom up past the
// four AWS reserves.
func (g *gen) addr(s *genSubnet) netip.Addr {
	a, ok := g.alloc[s.name]
	if !ok {
		a = s.cidr.Addr().Next().Next().Next().Next()
	}
	g.alloc[s.name] = a.Next()
	return a
}

func (g *gen) subnet(name string) *genSubnet {
	for _, s := range g.subnets {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (g *gen) build() {
	g.plan()
	g.workloads()
	g.natGateway()
	g.writeLab()
	g.writeManifests()
}

// plan picks the VPC, AZs, subnets, nodes and ENIs.
func (g *gen) plan() {
	bits := []int{16, 18, 20}[g.pick(3)]
	var base [4]byte
	switch g.pick(3) {
	case 0:
		base = [4]byte{10, byte(g.pick(256)), 0, 0}
	case 1:
		base = [4]byte{172, byte(16 + g.pick(16)), 0, 0}
	default:
		base = [4]byte{192, 168, 0, 0}
	}
	if bits > 16 {
		base[2] = byte(g.pick(1<<(bits-16)) << (24 - bits))
	}
	g.vpc = netip.PrefixFrom(netip.AddrFrom4(base), bits)
	g.pd = g.coin(0.3)
	sbits := 24
	if !g.pd {
		sbits = []int{24, 25, 26}[g.pick(3)]
	}
	g.slots, g.sbits = g.r.Perm(min(1<<(sbits-bits), 64)), sbits
	nextSlot := g.nextSlot
	naz := 1 + g.pick(4)
	for a := 0; a < naz; a++ {
		g.azs = append(g.azs, "us-east-1"+string(rune('a'+a)))
		g.subnets = append(g.subnets, &genSubnet{name: fmt.Sprintf("s%d", a+1), cidr: nextSlot(), az: a})
		if g.coin(0.5) {
			g.subnets = append(g.subnets, &genSubnet{name: fmt.Sprintf("x%d", a+1), cidr: nextSlot(), az: a})
		}
	}
	// Load balancers first: their subnets' roles shape the plan.
	for i, n := 0, g.pick(3); i < n; i++ {
		l := &genLB{name: fmt.Sprintf("nlb%d", i+1), internet: g.coin(0.35), ip: g.coin(0.5)}
		if l.ip {
			l.preserve = g.coin(0.5)
		} else {
			l.local = g.coin(0.5)
		}
		l.udp = g.coin(0.3)
		g.lbs = append(g.lbs, l)
	}
	for i, n := 0, g.pick(3); i < n; i++ {
		l := &genLB{name: fmt.Sprintf("alb%d", i+1), alb: true, internet: g.coin(0.35), crossZoneOff: g.coin(0.35)}
		if naz >= 2 { // an ALB needs subnets in two AZs at least
			g.lbs = append(g.lbs, l)
		}
	}
	var internal, public bool
	for _, l := range g.lbs {
		internal = internal || !l.internet
		public = public || l.internet
	}
	g.internet = public || g.coin(0.4)
	for a := range g.azs {
		// A role goes on a node subnet (which then holds pods and load
		// balancer nodes) or on a subnet of its own.
		for _, want := range []struct {
			on   bool
			role string
			name string
		}{{internal, "internal-elb", "li"}, {public, "elb", "lp"}} {
			if !want.on {
				continue
			}
			var s *genSubnet
			if g.coin(0.5) {
				for _, c := range []string{fmt.Sprintf("s%d", a+1), fmt.Sprintf("x%d", a+1)} {
					if c := g.subnet(c); c != nil && c.role == "" && s == nil {
						s = c
					}
				}
			}
			if s == nil {
				s = &genSubnet{name: fmt.Sprintf("%s%d", want.name, a+1), cidr: nextSlot(), az: a}
				g.subnets = append(g.subnets, s)
			}
			s.role = want.role
		}
	}
	if g.coin(0.4) {
		g.subnets = append(g.subnets, &genSubnet{name: "c1", cidr: nextSlot(), az: 0})
	}
	nnodes := 2 + g.pick(3)
	if g.pd {
		nnodes = min(nnodes, 3)
	}
	for i := 0; i < nnodes; i++ {
		n := &genNode{name: fmt.Sprintf("n%d", i+1), az: i % len(g.azs)}
		neni := 1 + g.pick(4)
		if g.pd {
			neni = min(neni, 3)
		}
		maxIdx := 3
		switch {
		case neni == 4 || g.coin(0.25):
			n.typ, maxIdx = []string{"m5.4xlarge", "c5.4xlarge"}[g.pick(2)], 7
		case neni <= 3 && g.coin(0.5):
			n.typ, maxIdx = []string{"m5.large", "t3.large", "c5.large"}[g.pick(3)], 2
		default:
			n.typ = []string{"m5.xlarge", "t3.xlarge", "c5.xlarge"}[g.pick(3)]
		}
		idx := append([]int{0}, g.r.Perm(maxIdx)[:neni-1]...)
		for k := 1; k < len(idx); k++ {
			idx[k]++
		}
		sort.Ints(idx)
		prim := g.subnet(fmt.Sprintf("s%d", n.az+1))
		withPrefixes := g.pd && g.coin(0.7)
		for _, ix := range idx {
			s := prim
			if x := g.subnet(fmt.Sprintf("x%d", n.az+1)); ix > 0 && x != nil && g.coin(0.6) {
				s = x
			}
			e := &genENI{index: ix, subnet: s, ip: g.addr(s)}
			if withPrefixes {
				s.prefixes++
				off := 256 - 16*(s.prefixes+1) // the top /28 holds the broadcast address
				e.prefix = netip.PrefixFrom(addOff(s.cidr.Addr(), off), 28)
			}
			n.enis = append(n.enis, e)
		}
		g.nodes = append(g.nodes, n)
	}
}

// nextSlot hands out the next free subnet of the VPC.
func (g *gen) nextSlot() netip.Prefix {
	i := g.slots[0]
	g.slots = g.slots[1:]
	a := g.vpc.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(i) << (32 - g.sbits)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), g.sbits)
}

// natGateway puts some topologies' nodes in private subnets behind a NAT
// gateway, as most production EKS clusters are built (walks D3): the node
// subnets of some AZs get a route table whose default route is a NAT
// gateway in a public subnet of its own. An AZ whose node subnet holds
// internet-facing load balancer nodes stays public (AWS puts those in
// public subnets). Nodes behind the NAT gateway have no Elastic IP; one
// may run aws-node with external SNAT and one with the internet excluded
// from SNAT (D3-external, D3-exclude).
func (g *gen) natGateway() {
	r := rand.New(rand.NewSource(g.seed ^ natSalt))
	if !g.internet || len(g.slots) == 0 || r.Float64() >= 0.4 {
		return
	}
	var cands []int
	for a := range g.azs {
		ok := a < len(g.nodes) // nodes go round the AZs: a walk needs one here
		for _, s := range g.subnets {
			if s.az == a && s.role == "elb" && (s.name[0] == 's' || s.name[0] == 'x') {
				ok = false
			}
		}
		if ok {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return
	}
	g.private = map[int]bool{}
	for _, a := range cands {
		if r.Float64() < 0.6 {
			g.private[a] = true
		}
	}
	if len(g.private) == 0 {
		g.private[cands[r.Intn(len(cands))]] = true
	}
	ng := &genSubnet{name: "ng1", cidr: g.nextSlot(), az: r.Intn(len(g.azs))}
	g.subnets = append(g.subnets, ng)
	g.nat = &genNAT{s: ng, ip: g.addr(ng), public: netip.AddrFrom4([4]byte{203, 0, 113, 9})}
	var behind []*genNode
	for _, n := range g.nodes {
		if g.private[n.az] {
			n.public = netip.Addr{}
			behind = append(behind, n)
		}
	}
	r.Shuffle(len(behind), func(i, j int) { behind[i], behind[j] = behind[j], behind[i] })
	// One node keeps the defaults (D3); the next may SNAT externally or
	// exclude the internet, and a third does the other.
	if len(behind) > 1 && r.Float64() < 0.7 {
		ext := r.Float64() < 0.5
		behind[1].externalSNAT, behind[1].excludeSNAT = ext, !ext
		if len(behind) > 2 {
			behind[2].externalSNAT, behind[2].excludeSNAT = !ext, ext
		}
	}
}

// privateSubnet says whether a subnet routes to the NAT gateway: a node
// subnet (s or x) of a private AZ.
func (g *gen) privateSubnet(s *genSubnet) bool {
	return g.nat != nil && g.private[s.az] && (strings.HasPrefix(s.name, "s") || strings.HasPrefix(s.name, "x"))
}

func addOff(a netip.Addr, off int) netip.Addr {
	for ; off > 0; off-- {
		a = a.Next()
	}
	return a
}

// workloads places pods, hosts and the load balancers' backends.
func (g *gen) workloads() {
	place := func(name, app string) *genPod {
		n := g.nodes[g.pick(len(g.nodes))]
		e := n.enis[g.pick(len(n.enis))]
		p := &genPod{name: name, app: app, node: n, eni: e}
		if e.prefix.IsValid() {
			p.ip = addOff(e.prefix.Addr(), e.next)
			e.next++
		} else {
			p.ip = g.addr(e.subnet)
		}
		g.pods = append(g.pods, p)
		return p
	}
	for i, n := 0, 2+g.pick(3); i < n; i++ {
		place(fmt.Sprintf("web%d", i+1), "web")
	}
	for i, n := 0, 1+g.pick(3); i < n; i++ {
		place(fmt.Sprintf("m%d", i+1), "misc")
	}
	if g.solo = g.coin(0.6); g.solo {
		place("solo", "solo")
	}
	// The api Deployment's replicas are addressed by the loader, as ipamd
	// hands out addresses: only on nodes whose ENI has no prefixes.
	if g.coin(0.7) {
		var cands []*genNode
		for _, n := range g.nodes {
			if !n.enis[0].prefix.IsValid() {
				cands = append(cands, n)
			}
		}
		if len(cands) > 0 {
			g.r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
			cands = cands[:1+g.pick(len(cands))]
			for _, n := range cands {
				g.api = append(g.api, n.name)
			}
		}
	}
	g.udp = g.coin(0.4)
	if g.coin(0.6) {
		g.nodePort = []string{"Cluster", "Local"}[g.pick(2)]
	}
	// Hosts: a client in a subnet of its own, a node subnet or an LB subnet.
	hs := g.subnet("c1")
	if hs == nil {
		hs = g.subnets[g.pick(len(g.subnets))]
	}
	g.host("client", hs)
	if g.coin(0.4) {
		g.host("client2", g.subnets[g.pick(len(g.subnets))])
	}
	backends := []string{"web", "misc"}
	if g.solo {
		backends = append(backends, "solo")
	}
	if len(g.api) > 0 {
		backends = append(backends, "api")
	}
	for _, l := range g.lbs {
		if !l.alb {
			l.app = backends[g.pick(len(backends))]
			continue
		}
		types := []string{"Prefix", "Exact"}
		perm := g.r.Perm(len(backends))
		for k := 0; k < 1+g.pick(len(backends)); k++ {
			svc := backends[perm[k]]
			l.paths = append(l.paths, genPath{path: "/" + svc, typ: types[g.pick(2)], svc: svc})
		}
		if g.coin(0.4) {
			l.def = backends[g.pick(len(backends))]
		}
	}
	if g.internet {
		for _, n := range g.nodes {
			if g.coin(0.6) {
				n.public = netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + nodeNum(n.name))})
			}
		}
	}
}

func nodeNum(name string) int {
	n := 0
	fmt.Sscanf(name, "n%d", &n)
	return n
}

func (g *gen) host(name string, s *genSubnet) {
	g.hosts = append(g.hosts, genHost{name, s, g.addr(s)})
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.out, format+"\n", args...) }

// allPods are the generated pods and the api Deployment's replicas, which
// the loader places: replica i on the i-th listed node, ENI 0.
func (g *gen) allPods() []*genPod {
	out := append([]*genPod(nil), g.pods...)
	for i := 0; i < len(g.api)+1 && len(g.api) > 0; i++ {
		var n *genNode
		for _, c := range g.nodes {
			if c.name == g.api[i%len(g.api)] {
				n = c
			}
		}
		out = append(out, &genPod{name: ReplicaName(DefaultNamespace, "api", i), app: "api", node: n, eni: n.enis[0]})
	}
	return out
}

func (g *gen) writeLab() {
	g.p("# Generated by spec.Random(%d): a topology no one wrote by hand.", g.seed)
	g.p("name: gen-%d", g.seed)
	g.p("description: generated from seed %d", g.seed)
	g.p("vpc:")
	g.p("  cidr: %s", g.vpc)
	if g.pd {
		g.p("  prefixDelegation: true")
	}
	g.p("azs:")
	for a, az := range g.azs {
		g.p("  - name: %s", az)
		g.p("    subnets:")
		for _, s := range g.subnets {
			if s.az != a {
				continue
			}
			role := ""
			if s.role != "" {
				role = ", role: " + s.role
			}
			switch {
			case g.privateSubnet(s):
				role += ", routeTable: private"
			case g.nat != nil && s == g.nat.s:
				role += ", routeTable: public"
			}
			g.p("      - {name: %s, cidr: %s%s}", s.name, s.cidr, role)
		}
	}
	if g.nat != nil {
		g.p("routeTables:")
		g.p("  - name: public")
		g.p("    routes:")
		g.p("      - {dst: 0.0.0.0/0, internetGateway: true}")
		g.p("  - name: private")
		g.p("    routes:")
		g.p("      - {dst: 0.0.0.0/0, natGateway: nat1}")
		g.p("natGateways:")
		g.p("  - {name: nat1, subnet: %s, ip: %s, publicIP: %s}", g.nat.s.name, g.nat.ip, g.nat.public)
	}
	g.p("nodes:")
	for _, n := range g.nodes {
		g.p("  - name: %s", n.name)
		g.p("    instanceType: %s", n.typ)
		switch {
		case n.externalSNAT:
			g.p("    vpcCNI: {externalSNAT: true}")
		case n.excludeSNAT:
			g.p("    vpcCNI: {excludeSNATCIDRs: [%s]}", excludedInternet)
		}
		g.p("    enis:")
		for _, e := range n.enis {
			pf := ""
			if e.prefix.IsValid() {
				pf = fmt.Sprintf(", prefixes: [%s]", e.prefix)
			}
			g.p("      - {index: %d, subnet: %s, ip: %s%s}", e.index, e.subnet.name, e.ip, pf)
		}
	}
	g.p("pods:")
	for _, pd := range g.pods {
		g.p("  - {name: %s, node: %s, eni: %d, ip: %s, labels: {app: %s}}", pd.name, pd.node.name, pd.eni.index, pd.ip, pd.app)
	}
	g.p("hosts:")
	for _, h := range g.hosts {
		g.p("  - {name: %s, subnet: %s, ip: %s}", h.name, h.s.name, h.ip)
	}
	if g.internet {
		g.p("internet:")
		g.p("  hosts:")
		g.p("    - {name: inet1, ip: 198.51.100.20}")
		var pubs []string
		for _, n := range g.nodes {
			if n.public.IsValid() {
				pubs = append(pubs, fmt.Sprintf("    - {private: %s, public: %s}", n.enis[0].ip, n.public))
			}
		}
		if len(pubs) > 0 {
			g.p("  publicIPs:")
			g.p("%s", strings.Join(pubs, "\n"))
		}
		var recs []string
		for _, l := range g.lbs {
			if l.internet {
				recs = append(recs, fmt.Sprintf("      - {name: %s.example.com, alias: %s}", l.name, l.name))
			}
		}
		if len(recs) > 0 {
			g.p("  dns:")
			g.p("    name: route53")
			g.p("    ip: 198.51.100.53")
			g.p("    records:")
			g.p("%s", strings.Join(recs, "\n"))
		}
	}
	g.p("walks:")
	g.deriveWalks()
	for _, w := range g.walks {
		g.p("  - %s", w)
	}
}

func (g *gen) walk(kind, format string, args ...any) {
	g.walks = append(g.walks, fmt.Sprintf("{name: w%d-%s, ", len(g.walks), kind)+fmt.Sprintf(format, args...)+"}")
}

// deriveWalks writes a walk for every path kind the topology holds.
func (g *gen) deriveWalks() {
	protos := []string{"icmp", "tcp", "udp"}
	proto := func() string { return protos[g.pick(3)] }
	g.walks = append(g.walks, "{name: w0-state, kind: state}")
	pods := g.pods
	var same, cross, toSecondary, fromSecondary [][2]*genPod
	for _, a := range pods {
		for _, b := range pods {
			switch {
			case a == b:
			case a.node == b.node:
				same = append(same, [2]*genPod{a, b})
			default:
				cross = append(cross, [2]*genPod{a, b})
				if b.eni.index > 0 {
					toSecondary = append(toSecondary, [2]*genPod{a, b})
				}
			}
			if a != b && a.eni.index > 0 {
				fromSecondary = append(fromSecondary, [2]*genPod{a, b})
			}
		}
	}
	for _, set := range []struct {
		kind  string
		pairs [][2]*genPod
	}{{"same-node", same}, {"cross-node", cross}, {"to-secondary", toSecondary}, {"from-secondary", fromSecondary}} {
		if len(set.pairs) > 0 {
			pr := set.pairs[g.pick(len(set.pairs))]
			g.walk(set.kind, "from: %s, to: %s, protocol: %s", pr[0].name, pr[1].name, proto())
		}
	}
	client := g.hosts[g.pick(len(g.hosts))].name
	g.walk("pod-host", "from: %s, to: %s, protocol: %s", pods[g.pick(len(pods))].name, client, proto())
	g.walk("clusterip", "from: %s, service: web, port: 80", pods[g.pick(len(pods))].name)
	if g.udp {
		g.walk("clusterip-udp", "from: %s, service: web, port: 9000, protocol: udp", pods[g.pick(len(pods))].name)
	}
	if g.solo {
		g.walk("hairpin", "from: solo, service: solo, port: 80")
	}
	if len(g.api) > 0 {
		g.walk("clusterip-api", "from: %s, service: api, port: 80", pods[g.pick(len(pods))].name)
		if g.coin(0.5) {
			g.walk("churn", "kind: churn, from: %s, service: api, port: 80, connections: 20", pods[g.pick(len(pods))].name)
		}
	}
	query := []string{"web", "web.default.svc.cluster.local"}[g.pick(2)]
	g.walk("dns", "kind: dns, from: %s, query: %s", pods[g.pick(len(pods))].name, query)
	withEP, withoutEP := g.nodesWith("web")
	if g.nodePort != "" {
		if g.nodePort == "Local" {
			g.walk("nodeport-local", "from: %s, service: np, port: 80, via: %s", client, withEP[g.pick(len(withEP))])
			if len(withoutEP) > 0 {
				g.walk("nodeport-drop", "from: %s, service: np, port: 80, via: %s, expect: drop", client, withoutEP[g.pick(len(withoutEP))])
			}
		} else {
			g.walk("nodeport", "from: %s, service: np, port: 80, via: %s", client, g.nodes[g.pick(len(g.nodes))].name)
		}
	}
	for _, l := range g.lbs {
		from := client
		dns := ""
		if l.internet {
			from, dns = "inet1", fmt.Sprintf(", dnsName: %s.example.com", l.name)
		}
		if !l.alb {
			if !l.internet {
				if from = g.nlbClient(l); from == "" {
					continue // every host shares a subnet with a target: not modelled
				}
			}
			if az := g.lbAZ(l, l.app, !l.ip); az != "" {
				g.walk("nlb", "from: %s, loadBalancer: %s, port: 80, az: %s%s", from, l.name, az, dns)
			}
			continue
		}
		for _, pt := range l.paths {
			path := pt.path
			if pt.typ == "Prefix" && g.coin(0.5) {
				path += "/x"
			}
			if az := g.lbAZ(l, pt.svc, false); az != "" {
				g.walk("alb", "from: %s, loadBalancer: %s, path: %s, az: %s%s", from, l.name, path, az, dns)
			}
		}
		app := l.def
		if app == "" {
			app = "web"
		}
		if az := g.lbAZ(l, app, false); az != "" {
			g.walk("alb-nomatch", "from: %s, loadBalancer: %s, path: /nothing, az: %s%s", from, l.name, az, dns)
		}
	}
	if g.internet {
		var with, without []*genPod
		nat := map[string][]*genPod{} // D3, D3-external, D3-exclude
		for _, pd := range pods {
			switch {
			case pd.node.public.IsValid():
				with = append(with, pd)
			case !g.privateSubnet(pd.node.enis[0].subnet):
				without = append(without, pd)
			case pd.node.externalSNAT:
				nat["egress-nat-external"] = append(nat["egress-nat-external"], pd)
			case pd.node.excludeSNAT:
				nat["egress-nat-exclude"] = append(nat["egress-nat-exclude"], pd)
			default:
				nat["egress-nat"] = append(nat["egress-nat"], pd)
			}
		}
		for _, kind := range []string{"egress-nat", "egress-nat-external", "egress-nat-exclude"} {
			if c := nat[kind]; len(c) > 0 {
				g.walk(kind, "from: %s, to: inet1, protocol: tcp", c[g.pick(len(c))].name)
			}
		}
		if len(with) > 0 {
			g.walk("egress", "from: %s, to: inet1, protocol: %s", with[g.pick(len(with))].name, proto())
		}
		if len(without) > 0 {
			g.walk("egress-drop", "from: %s, to: inet1, protocol: tcp, expect: drop", without[g.pick(len(without))].name)
		}
	}
}

// nlbClient is a host that may walk to an NLB: when the NLB preserves the
// client's address, none in the subnet of a target's eth0, which would
// answer it on-link, past the NLB (walk.LBOf rejects that walk).
func (g *gen) nlbClient(l *genLB) string {
	onLink := map[*genSubnet]bool{}
	switch {
	case !l.ip:
		for _, n := range g.nodes {
			onLink[n.enis[0].subnet] = true
		}
	case l.preserve:
		for _, pd := range g.allPods() {
			if pd.app == l.app && pd.eni.index == 0 {
				onLink[pd.eni.subnet] = true
			}
		}
	}
	for _, h := range g.hosts {
		if !onLink[h.s] {
			return h.name
		}
	}
	return ""
}

// nodesWith splits the nodes by whether they run a pod of app.
func (g *gen) nodesWith(app string) (with, without []string) {
	has := map[string]bool{}
	for _, pd := range g.allPods() {
		if pd.app == app {
			has[pd.node.name] = true
		}
	}
	for _, n := range g.nodes {
		if has[n.name] {
			with = append(with, n.name)
		} else {
			without = append(without, n.name)
		}
	}
	return with, without
}

// lbAZ is the AZ a load balancer walk uses: one whose node has a target in
// its own AZ (a node, or a pod of app), so the walk never depends on
// cross-zone or fail-open behaviour, which a walk does not model.
func (g *gen) lbAZ(l *genLB, app string, instance bool) string {
	var cands []string
	apps := []string{app}
	if l.alb && l.crossZoneOff {
		// Every target group of the ALB needs a target in the AZ, or its
		// node leaves DNS and cannot serve the group without one.
		apps = nil
		for _, pt := range l.paths {
			apps = append(apps, pt.svc)
		}
		if l.def != "" {
			apps = append(apps, l.def)
		}
	}
	for a, az := range g.azs {
		ok := true
		for _, want := range apps {
			has := false
			for _, pd := range g.allPods() {
				has = has || pd.node.az == a && pd.app == want
			}
			ok = ok && has
		}
		if instance && !l.local {
			ok = false
			for _, n := range g.nodes {
				ok = ok || n.az == a
			}
		}
		if ok {
			cands = append(cands, az)
		}
	}
	if len(cands) == 0 {
		return ""
	}
	return cands[g.pick(len(cands))]
}

func (g *gen) writeManifests() {
	svc := func(name, app, typ string, annos []string, policy string, udp bool) {
		g.p("---")
		g.p("apiVersion: v1")
		g.p("kind: Service")
		g.p("metadata:")
		g.p("  name: %s", name)
		if len(annos) > 0 {
			g.p("  annotations:")
			for _, a := range annos {
				g.p("    %s", a)
			}
		}
		g.p("spec:")
		g.p("  type: %s", typ)
		if policy != "" {
			g.p("  externalTrafficPolicy: %s", policy)
		}
		g.p("  selector: {app: %s}", app)
		g.p("  ports:")
		g.p("    - {name: http, port: 80, targetPort: 8080, protocol: TCP}")
		if udp {
			g.p("    - {name: echo, port: 9000, targetPort: 9000, protocol: UDP}")
		}
	}
	svc("web", "web", "ClusterIP", nil, "", g.udp)
	svc("misc", "misc", "ClusterIP", nil, "", false)
	if g.solo {
		svc("solo", "solo", "ClusterIP", nil, "", false)
	}
	if len(g.api) > 0 {
		svc("api", "api", "ClusterIP", nil, "", false)
		g.p("---")
		g.p("apiVersion: apps/v1")
		g.p("kind: Deployment")
		g.p("metadata:")
		g.p("  name: api")
		g.p("  annotations: {labctl.dev/nodes: %q}", strings.Join(g.api, ","))
		g.p("spec:")
		g.p("  replicas: %d", len(g.api)+1)
		g.p("  selector: {matchLabels: {app: api}}")
		g.p("  template:")
		g.p("    metadata: {labels: {app: api}}")
		g.p("    spec:")
		g.p("      containers:")
		g.p("        - {name: api, ports: [{name: http, containerPort: 8080}]}")
	}
	if g.nodePort != "" {
		svc("np", "web", "NodePort", nil, g.nodePort, false)
	}
	const sa = "service.beta.kubernetes.io/"
	const ia = "alb.ingress.kubernetes.io/"
	for _, l := range g.lbs {
		scheme := "internal"
		if l.internet {
			scheme = "internet-facing"
		}
		if !l.alb {
			annos := []string{sa + "aws-load-balancer-type: external", sa + "aws-load-balancer-scheme: " + scheme}
			policy := ""
			if l.ip {
				annos = append(annos, sa+"aws-load-balancer-nlb-target-type: ip")
				if l.preserve {
					annos = append(annos, sa+"aws-load-balancer-target-group-attributes: preserve_client_ip.enabled=true")
				}
			} else {
				annos = append(annos, sa+"aws-load-balancer-nlb-target-type: instance")
				policy = "Cluster"
				if l.local {
					policy = "Local"
				}
			}
			svc(l.name, l.app, "LoadBalancer", annos, policy, l.udp)
			continue
		}
		g.p("---")
		g.p("apiVersion: networking.k8s.io/v1")
		g.p("kind: Ingress")
		g.p("metadata:")
		g.p("  name: %s", l.name)
		g.p("  annotations:")
		g.p("    %sscheme: %s", ia, scheme)
		g.p("    %starget-type: ip", ia)
		if l.crossZoneOff {
			g.p("    %starget-group-attributes: load_balancing.cross_zone.enabled=false", ia)
		}
		g.p("spec:")
		g.p("  ingressClassName: alb")
		if l.def != "" {
			g.p("  defaultBackend: {service: {name: %s, port: {number: 80}}}", l.def)
		}
		g.p("  rules:")
		g.p("    - http:")
		g.p("        paths:")
		for _, pt := range l.paths {
			g.p("          - {path: %s, pathType: %s, backend: {service: {name: %s, port: {number: 80}}}}", pt.path, pt.typ, pt.svc)
		}
	}
}
