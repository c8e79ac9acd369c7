package run

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/labctl/labctl/lab/walk"
)

// TracedPacket is one packet as xtables-monitor --trace reported it in one
// namespace: its fields at the last hook, and every rule it hit in order.
type TracedPacket struct {
	Fields map[string]string // SRC, DST, ID, SPORT, DPORT, IN, OUT, MARK, ...
	Rules  []string          // "nat:KUBE-SEP-X -> DNAT: -A KUBE-SEP-X ... -j DNAT --to-destination ..."
}

// parseTrace groups xtables-monitor --trace output into packets. A packet
// is reported once per hook it passes; its fields are kept from the last
// report (after earlier hooks' marks and translations). nf_tables derives
// the trace id from the socket buffer's address, so a later packet may
// reuse an earlier one's id: a packet is its trace id and its IP ID.
func parseTrace(lines []string) []*TracedPacket {
	current := map[string]*TracedPacket{} // trace id -> the packet it now names
	var out []*TracedPacket
	for _, l := range lines {
		l = strings.TrimSpace(l)
		kind, rest, ok := strings.Cut(l, ": ")
		if !ok || (kind != "PACKET" && kind != "TRACE") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 3 {
			continue
		}
		id := f[1]
		p := current[id]
		if kind == "PACKET" {
			ipid := ""
			for _, kv := range f[2:] {
				if strings.HasPrefix(kv, "ID=") {
					ipid = kv[3:]
				}
			}
			if p == nil || p.Fields["ID"] != ipid {
				p = &TracedPacket{Fields: map[string]string{}}
				current[id] = p
				out = append(out, p)
			}
			for _, kv := range f[2:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					p.Fields[k] = v
				} else {
					p.Fields[kv] = "1" // flags such as SYN, ACK, DF
				}
			}
			continue
		}
		if p == nil {
			continue // a rule event before any packet report: nothing to pin it on
		}
		// TRACE: <family> <id> <table>:<chain>:rule:<handle>:<verdict>  <rule>
		where := strings.Split(f[2], ":")
		if len(where) < 4 || where[2] != "rule" {
			continue // policy and return events say nothing about a rule
		}
		if !iptablesTables[where[0]] {
			// A native nftables table (kube-proxy's in nftables mode): the
			// printer cannot show its rules as iptables and exits on them
			// (traceMonitor.respawn); nft monitor trace explains them.
			continue
		}
		verdict := strings.Join(where[4:], " ")
		if v, ok := nftVerdicts[verdict]; ok {
			verdict = v
		}
		rule := strings.TrimSpace(strings.TrimPrefix(rest, f[0]+" "+f[1]+" "+f[2]))
		rule = strings.TrimPrefix(rule, "-4 ")
		p.Rules = append(p.Rules, fmt.Sprintf("%s:%s %s: %s", where[0], where[1], verdict, rule))
	}
	return out
}

// iptablesTables are the tables iptables-nft writes, whose rules
// xtables-monitor prints.
var iptablesTables = map[string]bool{"raw": true, "mangle": true, "nat": true, "filter": true, "security": true}

// nftVerdicts names the nf_tables verdicts xtables-monitor prints as numbers.
var nftVerdicts = map[string]string{"0xffffffff": "CONTINUE", "0xfffffffe": "BREAK", "0xfffffffd": "JUMP",
	"0xfffffffc": "GOTO", "0xfffffffb": "RETURN"}

// translated reports whether a traced rule list applied a translation.
func translated(rules []string) bool {
	for _, r := range rules {
		for _, t := range []string{"-j DNAT", "-j SNAT", "-j MASQUERADE"} {
			if strings.Contains(r, t) {
				return true
			}
		}
	}
	return false
}

// findTraced is the traced packet a captured one was: same IP ID and source.
func findTraced(ps []*TracedPacket, seen *walk.Packet) *TracedPacket {
	id := strconv.Itoa(int(seen.IPID))
	for _, p := range ps {
		if p.Fields["ID"] == id && p.Fields["SRC"] == seen.Src.String() {
			return p
		}
	}
	return nil
}

// RuleCandidate is a policy rule as the explanation needs it.
type RuleCandidate struct {
	walk.RuleState
	IIF string
}

// matchRule is the policy rule the kernel used: the first, in priority
// order, whose selectors match the packet and whose table is the one the
// kernel's route lookup answered from (rules whose table had no route are
// passed over, as the kernel does). Nil when none fits: the caller says so.
func matchRule(rules []RuleCandidate, src, dst netip.Addr, iif string, mark uint32, table int) *RuleCandidate {
	sorted := append([]RuleCandidate(nil), rules...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Priority < sorted[j].Priority })
	for i := range sorted {
		r := &sorted[i]
		switch {
		case r.Src.IsValid() && r.Src.Bits() > 0 && !r.Src.Contains(src):
		case r.Dst.IsValid() && r.Dst.Bits() > 0 && !r.Dst.Contains(dst):
		case r.Mask != 0 && mark&r.Mask != r.Mark:
		case r.IIF != "" && r.IIF != iif:
		case r.Table == table:
			return r
		}
	}
	return nil
}

// describeRule prints a rule as `ip rule` does.
func describeRuleState(r RuleCandidate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", r.Priority)
	if r.Src.IsValid() && r.Src.Bits() > 0 {
		fmt.Fprintf(&b, " from %s", r.Src.Addr())
	} else {
		b.WriteString(" from all")
	}
	if r.Dst.IsValid() && r.Dst.Bits() > 0 {
		fmt.Fprintf(&b, " to %s", r.Dst.Addr())
	}
	if r.Mask != 0 {
		fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, r.Mask)
	}
	if r.IIF != "" {
		fmt.Fprintf(&b, " iif %s", r.IIF)
	}
	table := strconv.Itoa(r.Table)
	if r.Table == 254 {
		table = "main"
	}
	fmt.Fprintf(&b, " lookup %s", table)
	return b.String()
}
