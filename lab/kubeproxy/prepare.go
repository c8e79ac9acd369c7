package kubeproxy

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// settings is a validated Config with everything derived once per sync.
type settings struct {
	mark               string
	ipv6               bool
	ifLocal            []string // detector match for pod traffic; nil = no-op detector
	ifNotLocal         []string
	nodeIP             netip.Addr
	localhostNodePorts bool
	nodePortMatchAll   bool
	nodePortIPs        []string // per-IP KUBE-NODEPORTS jumps when !nodePortMatchAll
	masqueradeAll      bool
	randomFully        bool
	nfacct             bool
	tcpLiberal         bool
	zone               string // the node's zone label, for topology hints
}

// resolve validates cfg and derives settings.
func resolve(cfg Config) (*settings, error) {
	s := &settings{
		mark:          cfg.MasqueradeMark,
		ipv6:          cfg.IPv6,
		masqueradeAll: cfg.MasqueradeAll,
		randomFully:   cfg.RandomFully,
		nfacct:        cfg.NFAcct,
		tcpLiberal:    cfg.ConntrackTCPLiberal,
		zone:          cfg.Zone,
	}
	if s.mark == "" {
		s.mark = DefaultMasqueradeMark
	}
	if strings.ContainsAny(s.mark, " /\"\n") {
		return nil, fmt.Errorf("invalid masquerade mark %q", s.mark)
	}
	for _, ip := range cfg.NodeIPs {
		if ip.IsValid() && ip.Unmap().Is6() == s.ipv6 {
			s.nodeIP = ip.Unmap()
			break
		}
	}
	if cfg.ClusterCIDR != "" {
		for _, c := range strings.Split(cfg.ClusterCIDR, ",") {
			c = strings.TrimSpace(c)
			p, err := ParsePrefixSloppy(c)
			if err != nil {
				return nil, fmt.Errorf("invalid cluster CIDR: %w", err)
			}
			if p.Addr().Is6() == s.ipv6 && s.ifLocal == nil {
				// kube-proxy's ClusterCIDR detector writes the CIDR as configured.
				s.ifLocal = []string{"-s", c}
				s.ifNotLocal = []string{"!", "-s", c}
			}
		}
	}
	s.resolveNodePorts(cfg)
	return s, nil
}

// resolveNodePorts mirrors proxyutil.NodePortAddresses: only CIDRs of this
// family count, none (or a zero CIDR) matches everything, and localhost
// NodePorts need 127.0.0.1 to be included.
func (s *settings) resolveNodePorts(cfg Config) {
	var cidrs []netip.Prefix
	for _, p := range cfg.NodePortAddresses {
		if p.IsValid() && p.Addr().Is6() == s.ipv6 {
			cidrs = append(cidrs, p.Masked())
		}
	}
	s.nodePortMatchAll = len(cidrs) == 0
	containsLoopback := s.nodePortMatchAll
	for _, p := range cidrs {
		if p.Bits() == 0 {
			s.nodePortMatchAll = true
		}
		if !s.ipv6 && p.Contains(netip.AddrFrom4([4]byte{127, 0, 0, 1})) {
			containsLoopback = true
		}
	}
	s.localhostNodePorts = cfg.LocalhostNodePorts && !s.ipv6 && containsLoopback
	if s.nodePortMatchAll {
		return
	}
	// The loopback interface comes first in the kernel's address list.
	candidates := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}
	if s.ipv6 {
		candidates = []netip.Addr{netip.IPv6Loopback()}
	}
	candidates = append(candidates, cfg.NodeIPs...)
	seen := map[netip.Addr]bool{}
	for _, ip := range candidates {
		ip = ip.Unmap()
		if !ip.IsValid() || ip.Is6() != s.ipv6 || seen[ip] {
			continue
		}
		seen[ip] = true
		if ip.IsLoopback() && (s.ipv6 || !s.localhostNodePorts) {
			continue // kube-proxy skips these with an error log
		}
		for _, p := range cidrs {
			if p.Contains(ip) {
				s.nodePortIPs = append(s.nodePortIPs, ip.String())
				break
			}
		}
	}
}

// svcPort is a ServicePort normalised for rendering: family-filtered,
// endpoints sorted and de-duplicated, every string and chain name computed
// once (as kube-proxy caches them on servicePortInfo).
type svcPort struct {
	nsn, spn, proto      string
	portName             string
	cip, port, nodePort  string
	hcnp                 string // "" unless eTP=Local with a health check port
	externalIPs, lbIPs   []string
	sourceRanges         []netip.Prefix
	affinity             bool
	sticky               string
	internalLocal        bool
	externalLocal        bool
	externallyAccessible bool
	svc, svl, ext, fw    Chain
	eps                  []epInfo
	// plan and chains (what the port declares) depend only on the fields
	// above; prepareOne fills them last.
	plan   portPlan
	chains []Chain
}

// epInfo is an endpoint with its cached strings and KUBE-SEP chain.
type epInfo struct {
	Endpoint
	str, ip string
	chain   Chain
}

// ErrInvalidServicePort wraps every input error of Render and Proxier.Sync
// (unknown protocol, port out of range, the same port listed twice).
var ErrInvalidServicePort = errors.New("invalid service port")

// prepared is the normalised input of one sync.
type prepared struct {
	svcs  []*svcPort // sorted by namespace/name, port name, protocol
	total int        // endpoints over all ports (large-cluster mode)
	// memo is this sync's inputs with their prepared forms, for the next
	// sync to reuse once this one is applied; nil without a memo.
	memo map[portKey]*memoPort
	// changed holds each Service (namespace/name) with a port whose input
	// is not in the memo passed to prepare.
	changed map[string]bool
}

// portKey identifies a ServicePort across syncs. The family keeps a
// dual-stack Service's two ports apart (the proxier skips the other one).
type portKey struct {
	namespace, name, portName, protocol string
	ipv6                                bool
}

// memoPort is one ServicePort input (a deep copy) and its prepared form.
// A svcPort is never modified after prepareOne, so syncs can share it.
type memoPort struct {
	in ServicePort
	sp *svcPort // nil for a port this family skips
}

// prepare normalises and sorts the service ports for one sync. With a
// non-nil memo (a Proxier's), a port whose input equals its memo entry
// reuses the prepared form instead of hashing its chain names again.
func prepare(s *settings, in []ServicePort, memo map[portKey]*memoPort) (*prepared, error) {
	pr := &prepared{svcs: make([]*svcPort, 0, len(in))}
	if memo != nil {
		pr.memo = make(map[portKey]*memoPort, len(in))
		pr.changed = map[string]bool{}
	}
	for i := range in {
		var sp *svcPort
		if memo == nil {
			var err error
			if sp, err = prepareOne(s, &in[i]); err != nil {
				return nil, err
			}
		} else {
			k := portKey{in[i].Namespace, in[i].Name, in[i].PortName, in[i].Protocol, in[i].ClusterIP.Unmap().Is6()}
			m := memo[k]
			if m == nil || !m.in.equal(&in[i]) {
				p, err := prepareOne(s, &in[i])
				if err != nil {
					return nil, err
				}
				m = &memoPort{in: in[i].clone(), sp: p}
				pr.changed[in[i].Namespace+"/"+in[i].Name] = true
			}
			pr.memo[k], sp = m, m.sp
		}
		if sp != nil {
			pr.svcs = append(pr.svcs, sp)
			pr.total += len(sp.eps)
		}
	}
	out := pr.svcs
	slices.SortFunc(out, func(a, b *svcPort) int {
		return cmp.Or(cmp.Compare(a.nsn, b.nsn), cmp.Compare(a.portName, b.portName), cmp.Compare(a.proto, b.proto))
	})
	for i := 1; i < len(out); i++ {
		if out[i].spn == out[i-1].spn && out[i].proto == out[i-1].proto {
			return nil, fmt.Errorf("%w: %s/%s listed twice", ErrInvalidServicePort, out[i].spn, out[i].proto)
		}
	}
	return pr, nil
}

// prepareOne validates one ServicePort; it returns nil for ports kube-proxy
// would not program in this family (headless, or other-family ClusterIP).
func prepareOne(s *settings, in *ServicePort) (*svcPort, error) {
	spn := in.String()
	proto := strings.ToLower(in.Protocol)
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("%w: %s: protocol %q", ErrInvalidServicePort, spn, in.Protocol)
	}
	if in.Port <= 0 || in.Port > 65535 || in.NodePort < 0 || in.NodePort > 65535 ||
		in.HealthCheckNodePort < 0 || in.HealthCheckNodePort > 65535 {
		return nil, fmt.Errorf("%w: %s: port out of range", ErrInvalidServicePort, spn)
	}
	cip := in.ClusterIP.Unmap()
	if !cip.IsValid() || cip.Is6() != s.ipv6 {
		return nil, nil
	}
	sp := &svcPort{
		nsn:                  in.Namespace + "/" + in.Name,
		spn:                  spn,
		proto:                proto,
		portName:             in.PortName,
		cip:                  cip.String(),
		port:                 strconv.Itoa(int(in.Port)),
		affinity:             in.SessionAffinityClientIP,
		internalLocal:        in.InternalPolicyLocal,
		externallyAccessible: in.externallyAccessible(),
	}
	// All four per-port chains share one hash.
	h := hash16(spn, proto, "")
	sp.svc, sp.svl = chainName(prefixSVC, h), chainName(prefixSVL, h)
	sp.ext, sp.fw = chainName(prefixEXT, h), chainName(prefixFW, h)
	sp.externalLocal = in.ExternalPolicyLocal && sp.externallyAccessible
	if in.NodePort != 0 {
		sp.nodePort = strconv.Itoa(int(in.NodePort))
	}
	if sp.externalLocal && in.HealthCheckNodePort != 0 {
		sp.hcnp = strconv.Itoa(int(in.HealthCheckNodePort))
	}
	sticky := in.StickyMaxAgeSeconds
	if sticky == 0 {
		sticky = defaultStickySeconds
	}
	sp.sticky = strconv.Itoa(sticky)
	sp.externalIPs = familyStrings(s, in.ExternalIPs)
	sp.lbIPs = familyStrings(s, in.LoadBalancerIPs)
	for _, r := range in.LoadBalancerSourceRanges {
		p, err := ParsePrefixSloppy(strings.TrimSpace(r))
		if err == nil && p.Addr().Is6() == s.ipv6 {
			sp.sourceRanges = append(sp.sourceRanges, p)
		}
	}
	sp.eps = prepareEndpoints(s, spn, proto, in.Endpoints)
	sp.plan = plan(sp, s.zone)
	sp.chains = ownChains(sp, &sp.plan)
	return sp, nil
}

// familyStrings keeps the addresses of the proxier's family, as strings.
func familyStrings(s *settings, ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.IsValid() && ip.Is6() == s.ipv6 {
			out = append(out, ip.String())
		}
	}
	return out
}

// prepareEndpoints filters endpoints to the family, de-duplicates them by
// "ip:port" (a ready copy wins, as in the EndpointSlice cache) and sorts
// them by that string, as kube-proxy's EndpointsMap does.
func prepareEndpoints(s *settings, spn, proto string, in []Endpoint) []epInfo {
	eps := make([]epInfo, 0, len(in))
	for _, e := range in {
		e.IP = e.IP.Unmap()
		if !e.IP.IsValid() || e.IP.Is6() != s.ipv6 {
			continue
		}
		str := e.String()
		eps = append(eps, epInfo{Endpoint: e, str: str, ip: hostOf(str)})
	}
	slices.SortStableFunc(eps, func(a, b epInfo) int { return strings.Compare(a.str, b.str) })
	out := eps[:0]
	for _, e := range eps {
		if n := len(out); n > 0 && out[n-1].str == e.str {
			if e.Ready && !out[n-1].Ready {
				out[n-1] = e
			}
			continue
		}
		out = append(out, e)
	}
	for i := range out {
		out[i].chain = chainName(prefixSEP, hash16(spn, proto, out[i].str))
	}
	return out
}

// hostOf returns the address part of "ip:port" or "[ip]:port" without
// allocating.
func hostOf(hostPort string) string {
	i := strings.LastIndexByte(hostPort, ':')
	if hostPort[0] == '[' {
		return hostPort[1 : i-1]
	}
	return hostPort[:i]
}
