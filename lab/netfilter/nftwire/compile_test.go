//go:build linux

package nftwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func concat3() SetInfo {
	return SetInfo{Fields: []Field{FieldIPv4, FieldProto, FieldService}, Verdict: true}
}

func lookupOnly(sets map[string]SetInfo) SetLookup {
	return func(table, set string) (SetInfo, error) {
		if info, ok := sets[set]; ok {
			return info, nil
		}
		return SetInfo{}, errors.New("no set " + set)
	}
}

// Lines the netlink path does not encode make the whole program
// unsupported (so the caller runs nft), and the error names the line.
func TestCompileRefusesWhatItDoesNotEncodeNamingTheLine(t *testing.T) {
	for _, line := range []string{
		`add table ip kube-proxy { comment "rules for kube-proxy" ; }`,
		`add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }`,
		`add rule ip kube-proxy firewall-X ip saddr != { 203.0.113.0/25, 192.0.2.0/24 } drop`,
		`add rule ip kube-proxy masquerading masquerade fully-random`,
		`add rule ip6 kube-proxy c ip6 daddr ::1 drop`,
		`add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips`,
		`add rule ip kube-proxy c numgen random mod 2 vmap { 0 : goto a }`,
		`add map ip kube-proxy m { type ipv4_addr : verdict ; }`,
		`add set ip kube-proxy affinity-X { type ipv4_addr ; flags dynamic,timeout ; timeout 0s ; }`,
	} {
		_, err := Compile("add chain ip kube-proxy a\n"+line+"\n", lookupOnly(nil))
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: got %v, want ErrUnsupported", line, err)
			continue
		}
		if !strings.Contains(err.Error(), "line 2: "+line) {
			t.Errorf("%s: error %q does not name line 2", line, err)
		}
	}
}

// A Service chain's numgen vmap becomes an anonymous map, its elements and
// the rule, in that order, each map with its own transaction id that the
// rule's lookup names.
func TestCompileNumgenVmapSendsItsAnonymousMapBeforeTheRule(t *testing.T) {
	prog := `add chain ip kube-proxy s
flush chain ip kube-proxy s
add rule ip kube-proxy s numgen random mod 2 vmap { 0 : goto e1 , 1 : goto e2 }
add rule ip kube-proxy s numgen random mod 1 vmap { 0 : goto e1 }
delete chain ip kube-proxy old
`
	msgs, err := Compile(prog, lookupOnly(nil))
	if err != nil {
		t.Fatal(err)
	}
	var types []uint16
	for _, m := range msgs {
		types = append(types, m.Type)
	}
	want := []uint16{unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_NEWRULE,
		unix.NFT_MSG_NEWSET, unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELCHAIN}
	if !slicesEqual(types, want) {
		t.Fatalf("message types %v, want %v", types, want)
	}
	if msgs[4].Line != 3 || msgs[7].Line != 4 || msgs[8].Line != 5 {
		t.Errorf("lines %d %d %d, want 3 4 5", msgs[4].Line, msgs[7].Line, msgs[8].Line)
	}
	// NFTA_SET_ID (attribute 10, value 1 then 2) in the sets, and the
	// same id in each rule's lookup (NFTA_LOOKUP_SET_ID, attribute 4).
	for i, idx := range []int{2, 5} {
		id := []byte{8, 0, unix.NFTA_SET_ID, 0, 0, 0, 0, byte(i + 1)}
		if !bytes.Contains(msgs[idx].Data, id) {
			t.Errorf("set %d carries no NFTA_SET_ID %d", i, i+1)
		}
		lookupID := []byte{8, 0, unix.NFTA_LOOKUP_SET_ID, 0, 0, 0, 0, byte(i + 1)}
		if !bytes.Contains(msgs[idx+2].Data, lookupID) {
			t.Errorf("rule %d does not look up set id %d", i, i+1)
		}
	}
}

func slicesEqual(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A concatenated key pads each field to 4 bytes, as nft does: the address,
// then the protocol, then the port in network order.
func TestElementKeyPadsConcatenatedFields(t *testing.T) {
	msgs, err := Compile(`add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-X }`+"\n",
		lookupOnly(map[string]SetInfo{"service-ips": concat3()}))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString("ac1e0029" + "06000000" + "00500000")
	if !bytes.Contains(msgs[0].Data, key) {
		t.Errorf("element %x holds no key %x", msgs[0].Data, key)
	}
	if !bytes.Contains(msgs[0].Data, []byte("service-X\x00")) {
		t.Error("element has no verdict chain")
	}
	// A single-field set key is not padded.
	msgs, err = Compile("delete element ip kube-proxy service-nodeports { udp . 3001 }\n",
		lookupOnly(map[string]SetInfo{"service-nodeports": {Fields: []Field{FieldProto, FieldService}, Verdict: true}}))
	if err != nil {
		t.Fatal(err)
	}
	if msgs[0].Type != unix.NFT_MSG_DELSETELEM || !bytes.Contains(msgs[0].Data, []byte{0x11, 0, 0, 0, 0x0b, 0xb9, 0, 0}) {
		t.Errorf("delete of udp . 3001: %x", msgs[0].Data)
	}
}

// An element's set is asked of the kernel unless the program declares it,
// and a lookup failure is the program's error, not a fallback.
func TestElementsOfUndeclaredSetsAskTheKernel(t *testing.T) {
	_, err := Compile("add element ip kube-proxy nosuch { 1.2.3.4 }\n", lookupOnly(nil))
	if err == nil || errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "no set nosuch") {
		t.Errorf("got %v, want the lookup's error", err)
	}
	asked := 0
	lookup := func(table, set string) (SetInfo, error) { asked++; return SetInfo{}, errors.New("unexpected") }
	prog := "add set ip kube-proxy affinity-X { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }\n" +
		"add element ip kube-proxy affinity-X { 10.0.0.1 }\n"
	if _, err := Compile(prog, lookup); err != nil || asked != 0 {
		t.Errorf("declared set: err %v, lookups %d", err, asked)
	}
	// A verdict map element without a verdict is not what knftables writes.
	_, err = Compile("add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 }\n",
		lookupOnly(map[string]SetInfo{"service-ips": concat3()}))
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("verdict map element without verdict: %v", err)
	}
}

func TestDecodeKeyTypeSplitsConcatenations(t *testing.T) {
	fields, err := DecodeKeyType(7<<12|12<<6|13, 12)
	if err != nil || len(fields) != 3 || fields[0] != FieldIPv4 || fields[1] != FieldProto || fields[2] != FieldService {
		t.Errorf("ipv4_addr . inet_proto . inet_service: %v %v", fields, err)
	}
	if _, err := DecodeKeyType(7<<12|12<<6|13, 7); !errors.Is(err, ErrUnsupported) {
		t.Errorf("wrong key length accepted: %v", err)
	}
	if _, err := DecodeKeyType(8, 16); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ipv6_addr accepted: %v", err)
	}
	if _, err := setInfo("x", 7, 4, unix.NFT_SET_INTERVAL, 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("interval set accepted: %v", err)
	}
	if _, err := setInfo("x", 7, 4, unix.NFT_SET_MAP, 7); !errors.Is(err, ErrUnsupported) {
		t.Errorf("data map accepted: %v", err)
	}
}
