package run

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/lab/walk"
)

const sampleTrace = `PACKET: 2 904e71fb IN=eth0 MACSRC=e:d:59:99:72:b4 MACDST=a:de:7c:c1:80:d9 MACPROTO=0800 SRC=192.168.2.10 DST=192.168.1.50 LEN=60 TOS=0x0 TTL=63 ID=51081 DF SPORT=56000 DPORT=30080 SYN
 TRACE: 2 904e71fb raw:PREROUTING:rule:0x2:CONTINUE  -4 -t raw -A PREROUTING -j TRACE
 TRACE: 2 904e71fb raw:PREROUTING:policy:ACCEPT
PACKET: 2 904e71fb IN=eth0 MACSRC=e:d:59:99:72:b4 MACDST=a:de:7c:c1:80:d9 MACPROTO=0800 SRC=192.168.2.10 DST=192.168.1.50 LEN=60 TOS=0x0 TTL=63 ID=51081 DF SPORT=56000 DPORT=30080 SYN
 TRACE: 2 904e71fb nat:KUBE-SEP-E2HK3VPXI7BOPETH:rule:0x1d:ACCEPT  -4 -t nat -A KUBE-SEP-E2HK3VPXI7BOPETH -p tcp -m tcp -j DNAT --to-destination 192.168.1.71:80
PACKET: 2 904e71fb IN=eth0 OUT=eth0 SRC=192.168.2.10 DST=192.168.1.71 LEN=60 ID=51081 DF SPORT=56000 DPORT=80 SYN MARK=0x4000
 TRACE: 2 904e71fb nat:KUBE-POSTROUTING:rule:0x15:ACCEPT  -4 -t nat -A KUBE-POSTROUTING -j MASQUERADE --random-fully
PACKET: 2 abede218 IN=eth0 SRC=192.168.2.10 DST=192.168.1.50 ID=51082 DF SPORT=56000 DPORT=30080 ACK
`

func TestParseTraceSeparatesPacketsThatReuseATraceID(t *testing.T) {
	reuse := sampleTrace + `PACKET: 2 904e71fb IN=eth0 SRC=192.168.1.71 DST=192.168.1.50 ID=7 SPORT=80 DPORT=45961 SYN ACK
 TRACE: 2 904e71fb mangle:PREROUTING:rule:0x3:CONTINUE  -4 -t mangle -A PREROUTING -i eni+ -j CONNMARK --restore-mark
`
	ps := parseTrace(strings.Split(reuse, "\n"))
	if len(ps) != 3 || ps[0].Fields["ID"] != "51081" || ps[2].Fields["ID"] != "7" || len(ps[2].Rules) != 1 {
		t.Fatalf("a reused trace id merged two packets: %d packets", len(ps))
	}
}

func TestParseTraceGroupsRulesByPacketAndKeepsTheLastFields(t *testing.T) {
	ps := parseTrace(strings.Split(sampleTrace, "\n"))
	if len(ps) != 2 {
		t.Fatalf("%d packets, want 2", len(ps))
	}
	p := ps[0]
	if p.Fields["DST"] != "192.168.1.71" || p.Fields["MARK"] != "0x4000" || p.Fields["SYN"] != "1" {
		t.Errorf("fields after the last hook: %v", p.Fields)
	}
	if len(p.Rules) != 3 || !strings.Contains(p.Rules[1], "nat:KUBE-SEP-E2HK3VPXI7BOPETH ACCEPT: -t nat -A KUBE-SEP") ||
		!strings.Contains(p.Rules[2], "MASQUERADE") {
		t.Errorf("rules %q", p.Rules)
	}
	seen := &walk.Packet{IPID: 51081, Src: netip.MustParseAddr("192.168.2.10")}
	if findTraced(ps, seen) != p {
		t.Error("the captured packet is not joined to its trace by IP ID and source")
	}
}

func TestMatchRuleIsTheFirstMatchingRuleOfTheKernelsTable(t *testing.T) {
	pod := netip.MustParsePrefix("192.168.1.81/32")
	rules := []RuleCandidate{
		{RuleState: walk.RuleState{Priority: 0, Table: 255}},
		{RuleState: walk.RuleState{Priority: 512, Dst: pod, Table: 254}},
		{RuleState: walk.RuleState{Priority: 1024, Mark: 0x80, Mask: 0x80, Table: 254}},
		{RuleState: walk.RuleState{Priority: 1536, Src: pod, Table: 2}},
		{RuleState: walk.RuleState{Priority: 32766, Table: 254}},
	}
	src, dst := netip.MustParseAddr("192.168.1.81"), netip.MustParseAddr("192.168.1.51")
	if r := matchRule(rules, src, dst, "eni90fc33e464e", 0, 2); r == nil || r.Priority != 1536 {
		t.Errorf("A3's reply: got %+v, want rule 1536", r)
	}
	if r := matchRule(rules, src, dst, "eni90fc33e464e", 0x80, 254); r == nil || r.Priority != 1024 {
		t.Errorf("a marked reply: got %+v, want rule 1024", r)
	}
	if got := describeRuleState(*matchRule(rules, src, dst, "x", 0, 2)); got != "1536: from 192.168.1.81 lookup 2" {
		t.Errorf("described as %q", got)
	}
}

// xtables-monitor's output where a traced packet reached kube-proxy's
// native nftables table (nftables mode): the half-printed rule of the
// table it cannot print, then its restarted self's next packet.
func TestParseTraceDropsRulesOfNativeNFTablesTables(t *testing.T) {
	lines := []string{
		"PACKET: 2 faa1cfef IN=eth0 SRC=192.168.50.10 DST=192.168.1.50 ID=6932 DF SPORT=33906 DPORT=30080 SYN",
		` TRACE: 2 faa1cfef mangle:PREROUTING:rule:0x4:CONTINUE  -4 -t mangle -A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -j CONNMARK --set-xmark 0x80/0x80`,
		" TRACE: 2 faa1cfef kube-proxy:filter-prerouting-pre-dnat:rule:0x18:JUMP:firewall-check  -4 -t kube-proxy ",
		" TRACE: 2 faa1cfef labctl-trace-4242:pre:rule:0x2:CONTINUE  -4 -t labctl-trace-4242 ",
	}
	ps := parseTrace(lines)
	if len(ps) != 1 || len(ps[0].Rules) != 1 || !strings.HasPrefix(ps[0].Rules[0], "mangle:PREROUTING CONTINUE: ") {
		t.Fatalf("want the mangle rule only, got %+v", ps)
	}
}
