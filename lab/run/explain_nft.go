package run

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// NFTRuleHit is one rule a packet matched, as `nft monitor trace` reports
// it: the table and chain, the rule's text, its verdict, and the packet's
// fields at that hook (before the DNAT of a later hook).
type NFTRuleHit struct {
	Table, Chain, Rule, Verdict string
	Src, Dst                    netip.AddrPort
	Proto                       string
}

// NFTTracedPacket is one packet as nft monitor trace reported it in one
// namespace: its fields at the first and last hook, and the rules it hit.
type NFTTracedPacket struct {
	TraceID    string
	IPID       string
	Proto      string
	First, Now [2]netip.AddrPort // source and destination at the first and last report
	Rules      []NFTRuleHit
}

var (
	nftTraceLine = regexp.MustCompile(`^trace id (\S+) ip (\S+) (\S+) (packet|rule|policy|verdict) ?(.*)$`)
	nftVerdict   = regexp.MustCompile(`^(.*?)\s*\(verdict ([^)]*)\)$`)
	nftField     = func(name string) *regexp.Regexp { return regexp.MustCompile(`(?:^| )` + name + ` (\S+)`) }
	nftSaddr     = nftField("ip saddr")
	nftDaddr     = nftField("ip daddr")
	nftIPID      = nftField("ip id")
	nftPorts     = regexp.MustCompile(`(?:^| )(tcp|udp) sport (\d+) (?:tcp|udp) dport (\d+)`)
	nftNumgen    = regexp.MustCompile(`numgen (?:random|inc) mod \d+`)
	nftDNAT      = regexp.MustCompile(`dnat to (\S+)`)
)

// ParseNFTTrace groups `nft monitor trace` output into packets. nf_tables
// derives the trace id from the socket buffer's address, so a later packet
// may reuse an earlier one's id: a packet is its trace id and its IP ID
// (as parseTrace does for xtables-monitor). Lines it cannot read are
// skipped: a trace never fails a walk, it only explains it.
func ParseNFTTrace(lines []string) []*NFTTracedPacket {
	current := map[string]*NFTTracedPacket{}
	var out []*NFTTracedPacket
	for _, l := range lines {
		m := nftTraceLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		id, table, chain, kind, rest := m[1], m[2], m[3], m[4], m[5]
		p := current[id]
		switch kind {
		case "packet":
			src, dst, proto, ok := nftAddrs(rest)
			if !ok {
				continue // not TCP or UDP over IPv4: nothing a walk sends
			}
			ipid := ""
			if f := nftIPID.FindStringSubmatch(rest); f != nil {
				ipid = f[1]
			}
			if p == nil || p.IPID != ipid {
				p = &NFTTracedPacket{TraceID: id, IPID: ipid, Proto: proto, First: [2]netip.AddrPort{src, dst}}
				current[id] = p
				out = append(out, p)
			}
			p.Now = [2]netip.AddrPort{src, dst}
		case "rule":
			if p == nil {
				continue // a rule event before any packet report: nothing to pin it on
			}
			rule, verdict := rest, ""
			if v := nftVerdict.FindStringSubmatch(rest); v != nil {
				rule, verdict = v[1], v[2]
			}
			p.Rules = append(p.Rules, NFTRuleHit{Table: table, Chain: chain, Rule: strings.TrimSpace(rule), Verdict: verdict,
				Src: p.Now[0], Dst: p.Now[1], Proto: p.Proto})
		}
	}
	return out
}

// nftAddrs reads a packet report's addresses and ports.
func nftAddrs(s string) (src, dst netip.AddrPort, proto string, ok bool) {
	sa, da, ports := nftSaddr.FindStringSubmatch(s), nftDaddr.FindStringSubmatch(s), nftPorts.FindStringSubmatch(s)
	if sa == nil || da == nil || ports == nil {
		return src, dst, "", false
	}
	a, err1 := netip.ParseAddr(sa[1])
	b, err2 := netip.ParseAddr(da[1])
	sp, err3 := strconv.ParseUint(ports[2], 10, 16)
	dp, err4 := strconv.ParseUint(ports[3], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return src, dst, "", false
	}
	return netip.AddrPortFrom(a, uint16(sp)), netip.AddrPortFrom(b, uint16(dp)), ports[1], true
}

// FlowNFT keeps the traced packets of the walk's own flow: those whose
// first report (before any translation) is one of the flow's tuples.
func FlowNFT(ps []*NFTTracedPacket, flow map[Tuple]bool) []*NFTTracedPacket {
	var out []*NFTTracedPacket
	for _, p := range ps {
		if flow[Tuple{p.Proto, p.First[0], p.First[1]}] {
			out = append(out, p)
		}
	}
	return out
}

// findNFT is the traced packet a captured one was: same IP ID and source.
func findNFT(ps []*NFTTracedPacket, ipid uint16, src netip.Addr) *NFTTracedPacket {
	id := strconv.Itoa(int(ipid))
	for _, p := range ps {
		if p.IPID == id && p.First[0].Addr() == src {
			return p
		}
	}
	return nil
}

// kubeProxyTable is the table kube-proxy's nftables mode writes
// (kubernetes pkg/proxy/nftables/proxier.go, kubeProxyTable).
const kubeProxyTable = "kube-proxy"

// nftNoise are kube-proxy's dispatch rules every new connection passes
// whatever its destination: they say nothing of the Service.
func nftNoise(h NFTRuleHit) bool {
	switch {
	case h.Chain == "mark-for-masquerade":
		return false // the mark that has masquerading SNAT the packet
	case h.Verdict == "continue" || h.Verdict == "return":
		return true
	case strings.HasPrefix(h.Verdict, "jump ") && !strings.Contains(h.Verdict, "mark-for-masquerade"):
		return true // jump services, firewall-check, cluster-ips-check, masquerading...
	}
	return false
}

// mapElement names the element of a verdict map a rule looked up: the
// map's key as the packet made it (`ip daddr . meta l4proto . th dport`),
// and the verdict the element holds.
func mapElement(h NFTRuleHit) (name, key string, ok bool) {
	i := strings.Index(h.Rule, "vmap @")
	if i < 0 {
		return "", "", false
	}
	name = strings.Fields(h.Rule[i+len("vmap @"):])[0]
	switch {
	case strings.HasPrefix(h.Rule, "ip daddr . meta l4proto . th dport"):
		key = fmt.Sprintf("%s . %s . %d", h.Dst.Addr(), h.Proto, h.Dst.Port())
	case strings.Contains(h.Rule, "meta l4proto . th dport vmap"):
		key = fmt.Sprintf("%s . %d", h.Proto, h.Dst.Port())
	default:
		return "", "", false
	}
	return name, key, true
}

// NFTExplain says, rule by rule, what kube-proxy's nftables table did with
// one packet: which verdict map element matched, which Service chain the
// element sent it to, which endpoint numgen chose, the DNAT, the
// masquerade mark. obj prefixes each line as walk -x prints it.
func NFTExplain(obj string, p *NFTTracedPacket) []string {
	var out []string
	for _, h := range p.Rules {
		if h.Table != kubeProxyTable || nftNoise(h) {
			continue
		}
		pre := fmt.Sprintf("%s: nft %s %s: ", obj, h.Table, h.Chain)
		switch name, key, ok := mapElement(h); {
		case ok:
			out = append(out, fmt.Sprintf("%sverdict map @%s matched element %s : %s (rule: %s)", pre, name, key, h.Verdict, h.Rule))
		case nftNumgen.MatchString(h.Rule):
			out = append(out, fmt.Sprintf("%s%s chose %s (the Service chain's load balancing; rule: %s)", pre,
				nftNumgen.FindString(h.Rule), strings.TrimPrefix(strings.TrimPrefix(h.Verdict, "goto "), "jump "), h.Rule))
		case nftDNAT.MatchString(h.Rule):
			out = append(out, fmt.Sprintf("%sDNAT %s -> %s (rule: %s, verdict %s)", pre, h.Dst, nftDNAT.FindStringSubmatch(h.Rule)[1], h.Rule, h.Verdict))
		default:
			out = append(out, fmt.Sprintf("%s%s (verdict %s)", pre, h.Rule, h.Verdict))
		}
	}
	return out
}

// NFTObjects are the kube-proxy objects the packets matched, in order and
// once each: the verdict map elements, the Service, external and endpoint
// chains, and any reject or drop.
func NFTObjects(ps []*NFTTracedPacket) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, p := range ps {
		for _, h := range p.Rules {
			if h.Table != kubeProxyTable || nftNoise(h) {
				continue
			}
			switch name, key, ok := mapElement(h); {
			case ok:
				add(fmt.Sprintf("%s element %s : %s", name, key, h.Verdict))
			case h.Verdict == "drop" || h.Verdict == "reject" || strings.Contains(h.Rule, "reject"):
				add(fmt.Sprintf("%s: %s (verdict %s)", h.Chain, h.Rule, h.Verdict))
			case nftDNAT.MatchString(h.Rule):
				add(fmt.Sprintf("%s (dnat to %s)", h.Chain, nftDNAT.FindStringSubmatch(h.Rule)[1]))
			default:
				add(h.Chain)
			}
		}
	}
	return out
}

// NFTMapHasElement reports whether `nft list map` output holds an element
// with key (as "10.100.0.100 . tcp . 80"), whatever its verdict.
func NFTMapHasElement(listing, key string) bool {
	i := strings.Index(listing, "elements = {")
	if i < 0 {
		return false
	}
	body := listing[i+len("elements = {"):]
	if j := strings.IndexByte(body, '}'); j >= 0 {
		body = body[:j]
	}
	for _, e := range strings.Split(body, ",") {
		k, _, _ := strings.Cut(e, ":")
		if strings.Join(strings.Fields(k), " ") == key {
			return true
		}
	}
	return false
}

// nftTraceEnv is set, in the environment of every `nft monitor trace`
// labctl starts, to the trace table the printer reads
// (labctl-trace-<labctl's pid>): /proc/<pid>/environ then tells a later
// labctl which printers and tables belong to a walk still running.
const nftTraceEnv = "LABCTL_NFT_TRACE"

var nftTraceTableName = regexp.MustCompile(`(?m)^table ip (labctl-trace-(\d+))$`)

// nftTraceOwner is the pid a trace table's name holds (0 if none).
func nftTraceOwner(table string) int {
	pid, err := strconv.Atoi(strings.TrimPrefix(table, "labctl-trace-"))
	if err != nil || !strings.HasPrefix(table, "labctl-trace-") {
		return 0
	}
	return pid
}

// nftTraceProc is a trace printer labctl started, as /proc shows it in
// one namespace: its pid, its parent's, and the table of nftTraceEnv.
type nftTraceProc struct {
	PID, PPID int
	Table     string
}

// staleNFTTraces picks, from `nft list tables` in a namespace and the
// trace printers living there, what walks that did not finish left: the
// trace tables no running walk reads, and the printers whose labctl is
// gone. A walk runs while its printer's parent is still the labctl its
// table names: a killed labctl's printers are reparented (to init or a
// subreaper), and a process that reused the pid since has no printer of
// that table. A walk starts its printer before it loads its table, so a
// table seen here while its walk runs always has its printer.
func staleNFTTraces(tables string, procs []nftTraceProc) (stale []string, orphans []int) {
	read := map[string]bool{}
	for _, p := range procs {
		if owner := nftTraceOwner(p.Table); owner != 0 && p.PPID == owner {
			read[p.Table] = true
		} else {
			orphans = append(orphans, p.PID)
		}
	}
	for _, m := range nftTraceTableName.FindAllStringSubmatch(tables, -1) {
		if !read[m[1]] {
			stale = append(stale, m[1])
		}
	}
	return stale, orphans
}
