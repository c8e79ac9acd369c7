package kubeproxy

// portPlan is the per-service-port decision logic of syncProxyRules (spec
// §1.4), computed before any rule is written.
type portPlan struct {
	c                      categorized
	usesClusterPolicyChain bool
	usesLocalPolicyChain   bool
	internalChain          Chain // SVC, or SVL for iTP=Local
	hasInternalEndpoints   bool
	externalPolicyChain    Chain // SVC, or SVL for eTP=Local
	hasExternalEndpoints   bool
	usesExternalChain      bool
	usesFWChain            bool
	lbChain                Chain // KUBE-FW when source ranges apply, else KUBE-EXT
	internalFilterTarget   string
	internalFilterComment  string
	externalFilterTarget   string
	externalFilterComment  string
}

func plan(sp *svcPort, zone string) portPlan {
	p := portPlan{c: categorize(sp, zone)}
	p.usesClusterPolicyChain = len(p.c.cluster) > 0 && sp.usesClusterEndpoints()
	p.usesLocalPolicyChain = len(p.c.local) > 0 && sp.usesLocalEndpoints()
	p.internalChain, p.hasInternalEndpoints = sp.svc, p.c.hasAny
	if sp.internalLocal {
		p.internalChain = sp.svl
		p.hasInternalEndpoints = p.hasInternalEndpoints && len(p.c.local) > 0
	}
	p.externalPolicyChain, p.hasExternalEndpoints = sp.svc, p.c.hasAny
	if sp.externalLocal {
		p.externalPolicyChain = sp.svl
		p.hasExternalEndpoints = p.hasExternalEndpoints && len(p.c.local) > 0
	}
	// Based on hasAny, not hasExternalEndpoints: the short-circuit rules
	// for local traffic are needed even with no usable external endpoint.
	p.usesExternalChain = p.c.hasAny && sp.externallyAccessible
	p.usesFWChain = p.c.hasAny && len(sp.lbIPs) > 0 && len(sp.sourceRanges) > 0
	p.lbChain = sp.ext
	if p.usesFWChain {
		p.lbChain = sp.fw
	}
	switch {
	case !p.c.hasAny:
		// No endpoints anywhere: no nat chains at all, only REJECTs.
		p.internalFilterTarget, p.externalFilterTarget = "REJECT", "REJECT"
		p.internalFilterComment = `"` + sp.spn + ` has no endpoints"`
		p.externalFilterComment = p.internalFilterComment
	default:
		if !p.hasInternalEndpoints {
			p.internalFilterTarget = "DROP"
			p.internalFilterComment = `"` + sp.spn + ` has no local endpoints"`
		}
		if !p.hasExternalEndpoints {
			p.externalFilterTarget = "DROP"
			p.externalFilterComment = `"` + sp.spn + ` has no local endpoints"`
		}
	}
	return p
}

// servicePort writes one service port. It returns the spans of the port's
// own chain declarations and rules (what a partial sync may leave out) and
// the chains it declared.
func (r *renderer) servicePort(sp *svcPort) (decl, rules span, declared []Chain) {
	p := &sp.plan
	r.dispatch(sp, p)

	decl, rules = r.natChains.mark(), r.natRules.mark()
	for _, c := range sp.chains {
		r.natChains.chainLine(c)
		r.active[c] = struct{}{}
	}
	r.internalMasquerade(sp, p)
	if p.usesExternalChain {
		r.externalChain(sp, p)
	}
	if p.usesFWChain {
		r.firewallChain(sp)
	}
	if p.usesClusterPolicyChain {
		r.serviceToEndpoints(sp, sp.svc, p.c.cluster)
	}
	if p.usesLocalPolicyChain {
		r.serviceToEndpoints(sp, sp.svl, p.c.local)
	}
	for _, ep := range p.c.all {
		r.endpointChain(sp, ep)
	}
	return r.natChains.close(decl), r.natRules.close(rules), sp.chains
}

// unchangedPort is servicePort for a port whose input equals the one last
// applied: only the always-rewritten rules are written, and its own chains,
// already in the kernel, are kept active (not deleted as stale).
func (r *renderer) unchangedPort(sp *svcPort) {
	r.dispatch(sp, &sp.plan)
	for _, c := range sp.chains {
		r.active[c] = struct{}{}
	}
}

// ownChains are the chains a port declares, in kube-proxy's order: EXT,
// FW, SVC, SVL, then one SEP per endpoint used.
func ownChains(sp *svcPort, p *portPlan) []Chain {
	chains := make([]Chain, 0, 4+len(p.c.all))
	if p.usesExternalChain {
		chains = append(chains, sp.ext)
	}
	if p.usesFWChain {
		chains = append(chains, sp.fw)
	}
	if p.usesClusterPolicyChain {
		chains = append(chains, sp.svc)
	}
	if p.usesLocalPolicyChain {
		chains = append(chains, sp.svl)
	}
	for _, ep := range p.c.all {
		chains = append(chains, ep.chain)
	}
	return chains
}

// dispatch writes the always-rewritten rules of a port: the KUBE-SERVICES
// and KUBE-NODEPORTS jumps (nat) and the REJECT/DROP/ACCEPT rules (filter).
func (r *renderer) dispatch(sp *svcPort, p *portPlan) {
	proto := sp.proto
	if p.hasInternalEndpoints {
		r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", `"`+sp.spn+` cluster IP"`,
			"-m", proto, "-p", proto, "-d", sp.cip, "--dport", sp.port, "-j", string(p.internalChain))
	} else {
		r.filterRules.write("-A", string(ChainServices), "-m", "comment", "--comment", p.internalFilterComment,
			"-m", proto, "-p", proto, "-d", sp.cip, "--dport", sp.port, "-j", p.internalFilterTarget)
	}
	for _, eip := range sp.externalIPs {
		if p.c.hasAny {
			r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", `"`+sp.spn+` external IP"`,
				"-m", proto, "-p", proto, "-d", eip, "--dport", sp.port, "-j", string(sp.ext))
		}
		if !p.hasExternalEndpoints {
			// Either no endpoints at all (REJECT) or none for external
			// traffic (DROP what the EXT chain did not short-circuit).
			r.filterRules.write("-A", string(ChainExternalServices), "-m", "comment", "--comment", p.externalFilterComment,
				"-m", proto, "-p", proto, "-d", eip, "--dport", sp.port, "-j", p.externalFilterTarget)
		}
	}
	for _, lbip := range sp.lbIPs {
		if p.c.hasAny {
			r.natRules.write("-A", string(ChainServices), "-m", "comment", "--comment", `"`+sp.spn+` loadbalancer IP"`,
				"-m", proto, "-p", proto, "-d", lbip, "--dport", sp.port, "-j", string(p.lbChain))
		}
		if p.usesFWChain {
			r.filterRules.write("-A", string(ChainProxyFirewall), "-m", "comment", "--comment", `"`+sp.spn+` traffic not accepted by `+string(sp.fw)+`"`,
				"-m", proto, "-p", proto, "-d", lbip, "--dport", sp.port, "-j", "DROP")
		}
	}
	if !p.hasExternalEndpoints {
		for _, lbip := range sp.lbIPs {
			r.filterRules.write("-A", string(ChainExternalServices), "-m", "comment", "--comment", p.externalFilterComment,
				"-m", proto, "-p", proto, "-d", lbip, "--dport", sp.port, "-j", p.externalFilterTarget)
		}
	}
	if sp.nodePort != "" {
		if p.c.hasAny {
			// NodePorts are not subject to loadBalancerSourceRanges.
			if !r.s.ipv6 && r.s.localhostNodePorts && r.s.nfacct {
				r.natRules.write("-A", string(ChainNodePorts), "-m", "comment", "--comment", sp.spn,
					"-m", proto, "-p", proto, "-d", "127.0.0.0/8", "--dport", sp.nodePort,
					"-m", "nfacct", "--nfacct-name", "localhost_nps_accepted_pkts", "-j", string(sp.ext))
			}
			r.natRules.write("-A", string(ChainNodePorts), "-m", "comment", "--comment", sp.spn,
				"-m", proto, "-p", proto, "--dport", sp.nodePort, "-j", string(sp.ext))
		}
		if !p.hasExternalEndpoints {
			r.filterRules.write("-A", string(ChainExternalServices), "-m", "comment", "--comment", p.externalFilterComment,
				"-m", "addrtype", "--dst-type", "LOCAL", "-m", proto, "-p", proto, "--dport", sp.nodePort, "-j", p.externalFilterTarget)
		}
	}
	if sp.hcnp != "" {
		// Open the health check port whether or not there are local
		// endpoints; the answer itself says whether to use this node.
		r.filterRules.write("-A", string(ChainNodePorts), "-m", "comment", "--comment", `"`+sp.spn+` health check node port"`,
			"-m", "tcp", "-p", "tcp", "--dport", sp.hcnp, "-j", "ACCEPT")
	}
}

// internalMasquerade marks off-cluster traffic to the ClusterIP: a static
// route to the service range via any node bridges into the Service, and the
// reply must come back through that node.
func (r *renderer) internalMasquerade(sp *svcPort, p *portPlan) {
	if !p.hasInternalEndpoints {
		return
	}
	args := [...]string{"-A", string(p.internalChain), "-m", "comment", "--comment", `"` + sp.spn + ` cluster IP"`,
		"-m", sp.proto, "-p", sp.proto, "-d", sp.cip, "--dport", sp.port}
	switch {
	case r.s.masqueradeAll:
		r.natRules.write2(args[:], "-j", string(ChainMarkMasq))
	case r.s.ifNotLocal != nil:
		r.natRules.write2(args[:], r.s.ifNotLocal[0], r.s.ifNotLocal[1], r.s.ifNotLocal[2], "-j", string(ChainMarkMasq))
	}
}

// externalChain fills KUBE-EXT: masquerade for eTP=Cluster; for eTP=Local,
// the short-circuits that keep pod and node traffic working without local
// endpoints, then the jump to the policy chain.
func (r *renderer) externalChain(sp *svcPort, p *portPlan) {
	ext := string(sp.ext)
	if !sp.externalLocal {
		r.natRules.write("-A", ext, "-m", "comment", "--comment", `"masquerade traffic for `+sp.spn+` external destinations"`,
			"-j", string(ChainMarkMasq))
	} else {
		if r.s.ifLocal != nil {
			// Pod -> external destination skips both traffic policies, as if
			// it had gone out to the load balancer and come back.
			r.natRules.write("-A", ext, "-m", "comment", "--comment", `"pod traffic for `+sp.spn+` external destinations"`,
				r.s.ifLocal[0], r.s.ifLocal[1], "-j", string(sp.svc))
		}
		// Node-originated traffic still needs masquerade: the LB IP is a
		// local address and would be chosen as the source.
		r.natRules.write("-A", ext, "-m", "comment", "--comment", `"masquerade LOCAL traffic for `+sp.spn+` external destinations"`,
			"-m", "addrtype", "--src-type", "LOCAL", "-j", string(ChainMarkMasq))
		r.natRules.write("-A", ext, "-m", "comment", "--comment", `"route LOCAL traffic for `+sp.spn+` external destinations"`,
			"-m", "addrtype", "--src-type", "LOCAL", "-j", string(sp.svc))
	}
	if p.hasExternalEndpoints {
		r.natRules.write("-A", ext, "-j", string(p.externalPolicyChain))
	}
}

// firewallChain fills KUBE-FW from loadBalancerSourceRanges. Traffic that
// falls off its end is dropped by the filter KUBE-PROXY-FIREWALL rule.
func (r *renderer) firewallChain(sp *svcPort) {
	args := [...]string{"-A", string(sp.fw), "-m", "comment", "--comment", `"` + sp.spn + ` loadbalancer IP"`}
	allowFromNode := false
	for _, cidr := range sp.sourceRanges {
		r.natRules.write2(args[:], "-s", cidr.String(), "-j", string(sp.ext))
		if r.s.nodeIP.IsValid() && cidr.Contains(r.s.nodeIP) {
			allowFromNode = true
		}
	}
	// A VIP-like LB IP is often a local address, so node -> VIP arrives
	// with the VIP as source; let that through when the node is allowed.
	if allowFromNode {
		for _, lbip := range sp.lbIPs {
			r.natRules.write2(args[:], "-s", lbip, "-j", string(sp.ext))
		}
	}
	r.natRules.write("-A", string(sp.fw), "-m", "comment", "--comment",
		`"other traffic to `+sp.spn+` will be dropped by KUBE-PROXY-FIREWALL"`)
}

// serviceToEndpoints fills a KUBE-SVC/KUBE-SVL chain: ClientIP affinity
// checks first, then one statistic rule per endpoint, each taking 1/k of
// what is left so the split is uniform.
func (r *renderer) serviceToEndpoints(sp *svcPort, chain Chain, eps []*epInfo) {
	c := string(chain)
	if sp.affinity {
		for _, ep := range eps {
			if r.largeCluster {
				r.natRules.write("-A", c, "-m", "recent", "--name", string(ep.chain),
					"--rcheck", "--seconds", sp.sticky, "--reap", "-j", string(ep.chain))
			} else {
				r.natRules.write("-A", c, "-m", "comment", "--comment", `"`+sp.spn+` -> `+ep.str+`"`,
					"-m", "recent", "--name", string(ep.chain), "--rcheck", "--seconds", sp.sticky, "--reap", "-j", string(ep.chain))
			}
		}
	}
	n := len(eps)
	for i, ep := range eps {
		var head []string
		if r.largeCluster {
			head = []string{"-A", c}
		} else {
			head = []string{"-A", c, "-m", "comment", "--comment", `"` + sp.spn + ` -> ` + ep.str + `"`}
		}
		if i < n-1 {
			r.natRules.write2(head, "-m", "statistic", "--mode", "random", "--probability", r.probability(n-i), "-j", string(ep.chain))
		} else {
			r.natRules.write2(head, "-j", string(ep.chain))
		}
	}
}

// endpointChain fills a KUBE-SEP chain: hairpin masquerade (a pod reaching
// itself through the Service) and the DNAT.
func (r *renderer) endpointChain(sp *svcPort, ep *epInfo) {
	head := []string{"-A", string(ep.chain), "-m", "comment", "--comment", sp.spn}
	if r.largeCluster {
		head = head[:2]
	}
	r.natRules.write2(head, "-s", ep.ip, "-j", string(ChainMarkMasq))
	if sp.affinity {
		r.natRules.write2(head, "-m", "recent", "--name", string(ep.chain), "--set",
			"-m", sp.proto, "-p", sp.proto, "-j", "DNAT", "--to-destination", ep.str)
	} else {
		r.natRules.write2(head, "-m", sp.proto, "-p", sp.proto, "-j", "DNAT", "--to-destination", ep.str)
	}
}
