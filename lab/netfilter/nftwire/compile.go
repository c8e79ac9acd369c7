//go:build linux

// Package nftwire sends kube-proxy's nftables transactions to the kernel as
// nf_tables netlink messages, without the nft program.
//
// Why: nft 1.0.6 (Debian 12's) dumps every table, chain and set of the
// namespace into its cache before it sends a batch, so at 1,000 Services
// each `nft -f` of a two-line change costs 30-60 ms of CPU before the kernel
// sees a byte. kube-proxy's partial syncs are a few dozen messages; sent
// directly they take a few milliseconds.
//
// Compile understands the `nft -f` programs that sigs.k8s.io/knftables
// writes for kube-proxy's nftables proxier (kubernetes/kubernetes
// pkg/proxy/nftables/proxier.go): chains without hooks, the rules of
// service, external, endpoint and firewall chains, affinity sets, and
// elements of the proxier's sets and verdict maps. Each construct is encoded
// as nft 1.0.6 encodes it (libnftnl's attribute layout and nft's user data),
// so the kernel ends up holding the same objects, byte for byte: the
// equivalence test applies the same transactions both ways in two
// namespaces and compares the kernel's dumps. Anything else (tables, base
// chains, typed maps, the proxier's setup rules) is ErrUnsupported, and the
// caller runs nft instead: a program is never half understood.
package nftwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned for a program line Compile does not encode.
var ErrUnsupported = errors.New("not supported by the netlink path")

// Msg is one nf_tables message of a batch.
type Msg struct {
	Type  uint16 // NFT_MSG_*
	Flags uint16 // NLM_F_CREATE, NLM_F_APPEND; Request is added when sent
	Data  []byte // nfgenmsg and attributes
	Line  int    // the program line it came from, 1-based
}

// Field is one field of a set key.
type Field int

// The key fields the proxier's sets and maps use (nft's datatype ids).
const (
	FieldIPv4    Field = 7  // ipv4_addr
	FieldProto   Field = 12 // inet_proto
	FieldService Field = 13 // inet_service
)

func (f Field) size() int {
	switch f {
	case FieldIPv4:
		return 4
	case FieldProto:
		return 1
	case FieldService:
		return 2
	}
	return 0
}

// SetInfo is what encoding an element needs to know of its set.
type SetInfo struct {
	Fields  []Field
	Verdict bool // a verdict map
}

// SetLookup answers the type of a set the program does not declare
// (it lives in the kernel already).
type SetLookup func(table, set string) (SetInfo, error)

// DecodeKeyType splits nft's key type word (each field's datatype id in 6
// bits, first field highest; nft's concat_type_alloc) into fields.
func DecodeKeyType(keyType, keyLen uint32) ([]Field, error) {
	var fields []Field
	for t := keyType; t != 0; t >>= 6 {
		f := Field(t & 0x3f)
		if f.size() == 0 {
			return nil, fmt.Errorf("key type %#x: datatype %d %w", keyType, f, ErrUnsupported)
		}
		fields = append([]Field{f}, fields...)
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("key type 0: %w", ErrUnsupported)
	}
	if keyLen != uint32(keyLen4(fields)) {
		return nil, fmt.Errorf("key type %#x with length %d: %w", keyType, keyLen, ErrUnsupported)
	}
	return fields, nil
}

// keyLen4 is a key's length: one field as it is, a concatenation with each
// field padded to 4 bytes (nft's netlink_gen_concat_data).
func keyLen4(fields []Field) int {
	if len(fields) == 1 {
		return fields[0].size()
	}
	n := 0
	for _, f := range fields {
		n += (f.size() + 3) &^ 3
	}
	return n
}

// compiler holds one program's state.
type compiler struct {
	lookup SetLookup
	msgs   []Msg
	line   int
	setID  uint32
	sets   map[string]SetInfo // declared by the program
}

// Compile encodes program (knftables' `nft -f` text) as one batch of
// messages. lookup answers the types of sets the program adds elements to
// without declaring them.
func Compile(program string, lookup SetLookup) ([]Msg, error) {
	c := &compiler{lookup: lookup, sets: map[string]SetInfo{}}
	// Line by line, never split whole: a full sync (megabytes) is refused
	// at its first line.
	for line := range strings.Lines(program) {
		c.line++
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if err := c.command(line); err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", c.line, line, err)
		}
	}
	return c.msgs, nil
}

func (c *compiler) emit(typ, flags uint16, attrs func(ae *netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		return err
	}
	// nfgenmsg: family ipv4, version 0, resource id 0.
	data := append([]byte{unix.NFPROTO_IPV4, 0, 0, 0}, b...)
	c.msgs = append(c.msgs, Msg{Type: typ, Flags: flags, Data: data, Line: c.line})
	return nil
}

// nameOnly are the commands that name one object and hold nothing else:
// their message, its flags and the attribute of the name (the table is
// attribute 1 of each). A flush is a DELRULE naming only the chain.
var nameOnly = map[string]struct{ typ, flags, nameAttr uint16 }{
	"add chain":    {unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, unix.NFTA_CHAIN_NAME},
	"flush chain":  {unix.NFT_MSG_DELRULE, 0, unix.NFTA_RULE_CHAIN},
	"delete chain": {unix.NFT_MSG_DELCHAIN, 0, unix.NFTA_CHAIN_NAME},
	"delete set":   {unix.NFT_MSG_DELSET, 0, unix.NFTA_SET_NAME},
}

func (c *compiler) command(line string) error {
	toks, err := tokenize(line)
	if err != nil {
		return err
	}
	if len(toks) < 5 || toks[2] != "ip" {
		return ErrUnsupported
	}
	verb, kind, table, name, rest := toks[0], toks[1], toks[3], toks[4], toks[5:]
	if o, ok := nameOnly[verb+" "+kind]; ok {
		if len(rest) != 0 {
			return ErrUnsupported // base chains and comments: nft
		}
		return c.emit(o.typ, o.flags, func(ae *netlink.AttributeEncoder) {
			ae.String(1, table) // NFTA_{CHAIN,RULE,SET}_TABLE
			ae.String(o.nameAttr, name)
		})
	}
	switch verb + " " + kind {
	case "add rule":
		return c.rule(table, name, rest)
	case "add element", "delete element":
		return c.element(verb == "add", table, name, rest)
	case "add set":
		return c.affinitySet(table, name, rest)
	}
	return ErrUnsupported
}

// tokenize splits on spaces; a double-quoted string (knftables' comments,
// which never hold a quote) is one token without its quotes, marked by a
// leading NUL so that it cannot be mistaken for a keyword.
func tokenize(line string) ([]string, error) {
	var toks []string
	for line != "" {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			break
		}
		if line[0] == '"' {
			end := strings.IndexByte(line[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated string")
			}
			toks = append(toks, "\x00"+line[1:1+end])
			line = line[end+2:]
			continue
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		toks = append(toks, line[:end])
		line = line[end:]
	}
	return toks, nil
}

func quoted(tok string) (string, bool) {
	if strings.HasPrefix(tok, "\x00") {
		return tok[1:], true
	}
	return "", false
}

// Registers as nft allocates them for these rules: NFT_REG_1 and NFT_REG_2
// (16-byte registers), NFT_REG_VERDICT for verdicts.
const (
	reg1 = 1
	reg2 = 2
)

// rule encodes one "add rule" line: its expressions, anonymous sets first.
func (c *compiler) rule(table, chain string, toks []string) error {
	var exprs []expr.Any
	var comment string
	p := &parser{toks: toks}
	for !p.done() {
		tok := p.next()
		switch tok {
		case "ip":
			e, err := c.ipMatch(table, p)
			if err != nil {
				return err
			}
			exprs = append(exprs, e...)
		case "meta":
			// meta l4proto <proto> (before a dnat)
			if p.next() != "l4proto" {
				return ErrUnsupported
			}
			proto, ok := protoNum(p.next())
			if !ok {
				return ErrUnsupported
			}
			exprs = append(exprs,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}})
		case "mark":
			e, err := mark(p)
			if err != nil {
				return err
			}
			exprs = append(exprs, e...)
		case "fib":
			// fib saddr|daddr type local
			dir, typ, local := p.next(), p.next(), p.next()
			if (dir != "saddr" && dir != "daddr") || typ != "type" || local != "local" {
				return ErrUnsupported
			}
			exprs = append(exprs,
				&expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagSADDR: dir == "saddr", FlagDADDR: dir == "daddr"},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)})
		case "numgen":
			e, err := c.numgenVmap(table, p)
			if err != nil {
				return err
			}
			exprs = append(exprs, e...)
		case "dnat":
			e, err := dnat(p)
			if err != nil {
				return err
			}
			exprs = append(exprs, e...)
		case "update":
			// update @set { ip saddr }
			set, ok := strings.CutPrefix(p.next(), "@")
			if !ok || p.next() != "{" || p.next() != "ip" || p.next() != "saddr" || p.next() != "}" {
				return ErrUnsupported
			}
			exprs = append(exprs,
				&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: uint32(unix.NFT_DYNSET_OP_UPDATE)})
		case "jump", "goto":
			target := p.next()
			if target == "" {
				return ErrUnsupported
			}
			kind := expr.VerdictJump
			if tok == "goto" {
				kind = expr.VerdictGoto
			}
			exprs = append(exprs, &expr.Verdict{Kind: kind, Chain: target})
		case "drop":
			exprs = append(exprs, &expr.Verdict{Kind: expr.VerdictDrop})
		case "return":
			exprs = append(exprs, &expr.Verdict{Kind: expr.VerdictReturn})
		case "comment":
			s, ok := quoted(p.next())
			if !ok || !p.done() {
				return ErrUnsupported
			}
			comment = s
		default:
			return ErrUnsupported
		}
	}
	if len(exprs) == 0 {
		return ErrUnsupported
	}
	var list []byte
	for _, e := range exprs {
		b, err := expr.Marshal(unix.NFPROTO_IPV4, e)
		if err != nil {
			return err
		}
		list = appendAttr(list, unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, b)
	}
	return c.emit(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.NFTA_RULE_TABLE, table)
		ae.String(unix.NFTA_RULE_CHAIN, chain)
		ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, list)
		if comment != "" {
			// nft's rule comment: NFTNL_UDATA_RULE_COMMENT, NUL-terminated.
			ae.Bytes(unix.NFTA_RULE_USERDATA, udataString(0, comment))
		}
	})
}

// udataString is one libnftnl user-data TLV holding a NUL-terminated string.
func udataString(typ byte, s string) []byte {
	return append([]byte{typ, byte(len(s) + 1)}, append([]byte(s), 0)...)
}

// appendAttr appends one netlink attribute (header, data, padding).
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for n%4 != 0 {
		b = append(b, 0)
		n++
	}
	return b
}

type parser struct {
	toks []string
	i    int
}

func (p *parser) done() bool { return p.i >= len(p.toks) }
func (p *parser) peek() string {
	if p.done() {
		return ""
	}
	return p.toks[p.i]
}
func (p *parser) next() string {
	t := p.peek()
	p.i++
	return t
}

// ipMatch encodes "ip saddr|daddr [!=] <addr|prefix|@set|{ one prefix }>".
func (c *compiler) ipMatch(table string, p *parser) ([]expr.Any, error) {
	var off uint32
	switch p.next() {
	case "saddr":
		off = 12
	case "daddr":
		off = 16
	default:
		return nil, ErrUnsupported
	}
	op := expr.CmpOpEq
	if p.peek() == "!=" {
		p.next()
		op = expr.CmpOpNeq
	}
	val := p.next()
	if set, ok := strings.CutPrefix(val, "@"); ok {
		if set == "" {
			return nil, ErrUnsupported
		}
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
			&expr.Lookup{SourceRegister: reg1, SetName: set, Invert: op == expr.CmpOpNeq},
		}, nil
	}
	if val == "{" {
		// nft turns a one-element anonymous set into a plain comparison;
		// more elements would be an interval set, which the nft path writes.
		val = p.next()
		if p.next() != "}" {
			return nil, ErrUnsupported
		}
	}
	pfx, err := parsePrefix(val)
	if err != nil {
		return nil, ErrUnsupported
	}
	return prefixMatch(off, op, pfx), nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() || p != p.Masked() || p.Bits() == 0 {
			return netip.Prefix{}, ErrUnsupported
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, ErrUnsupported
	}
	return netip.PrefixFrom(a, 32), nil
}

// prefixMatch is nft's encoding of a prefix comparison: a byte-aligned
// prefix loads only its bytes; any other masks the address first.
func prefixMatch(off uint32, op expr.CmpOp, p netip.Prefix) []expr.Any {
	a := p.Addr().As4()
	if p.Bits()%8 == 0 {
		n := uint32(p.Bits() / 8)
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Cmp{Op: op, Register: reg1, Data: a[:n]},
		}
	}
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: reg1, Data: a[:]},
	}
}

// mark encodes kube-proxy's masquerade-mark rules as nft does, the mark
// in host byte order: "mark set mark or|xor M" (a bitwise on the loaded
// mark, stored back) and "mark and M == V".
func mark(p *parser) ([]expr.Any, error) {
	load := &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1}
	num := func(s string) ([]byte, bool) {
		n, err := strconv.ParseUint(s, 0, 32)
		return binary.NativeEndian.AppendUint32(nil, uint32(n)), err == nil
	}
	switch p.next() {
	case "set":
		if p.next() != "mark" {
			return nil, ErrUnsupported
		}
		op := p.next()
		m, ok := num(p.next())
		if !ok {
			return nil, ErrUnsupported
		}
		var andMask []byte
		switch op {
		case "or":
			v := binary.NativeEndian.Uint32(m)
			andMask = binary.NativeEndian.AppendUint32(nil, ^v)
		case "xor":
			andMask = []byte{0xff, 0xff, 0xff, 0xff}
		default:
			return nil, ErrUnsupported
		}
		return []expr.Any{load,
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: andMask, Xor: m},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}}, nil
	case "and":
		m, ok := num(p.next())
		if !ok || p.next() != "==" {
			return nil, ErrUnsupported
		}
		v, ok := num(p.next())
		if !ok {
			return nil, ErrUnsupported
		}
		return []expr.Any{load,
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: v}}, nil
	}
	return nil, ErrUnsupported
}

func protoNum(s string) (byte, bool) {
	switch s {
	case "tcp":
		return unix.IPPROTO_TCP, true
	case "udp":
		return unix.IPPROTO_UDP, true
	case "sctp":
		return unix.IPPROTO_SCTP, true
	}
	return 0, false
}

// dnat encodes "dnat to <ipv4>:<port>" as nft does: the address in reg 1,
// the port in reg 2, flags PROTO_SPECIFIED.
func dnat(p *parser) ([]expr.Any, error) {
	if p.next() != "to" {
		return nil, ErrUnsupported
	}
	ap, err := netip.ParseAddrPort(p.next())
	if err != nil || !ap.Addr().Is4() {
		return nil, ErrUnsupported
	}
	a := ap.Addr().As4()
	return []expr.Any{
		&expr.Immediate{Register: reg1, Data: a[:]},
		&expr.Immediate{Register: reg2, Data: binary.BigEndian.AppendUint16(nil, ap.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg2, Specified: true},
	}, nil
}

// numgenMapUserdata is the user data nft 1.0.6 gives the anonymous map of
// "numgen random mod N vmap { ... }": key byte order host (1), data byte
// order 0, the data's typeof (verdict) and data interval 0. It does not
// depend on N or the elements.
var numgenMapUserdata = []byte{0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
	0x04, 0x08, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00}

// numgenVmap encodes "numgen random mod N vmap { 0 : goto a , 1 : goto b }":
// an anonymous constant map of host-order integers to verdicts, its
// elements, then the numgen and the lookup.
func (c *compiler) numgenVmap(table string, p *parser) ([]expr.Any, error) {
	if p.next() != "random" || p.next() != "mod" {
		return nil, ErrUnsupported
	}
	mod, err := strconv.ParseUint(p.next(), 10, 32)
	if err != nil || mod == 0 || p.next() != "vmap" || p.next() != "{" {
		return nil, ErrUnsupported
	}
	var elems []byte
	for i := uint64(0); ; i++ {
		key, err := strconv.ParseUint(p.next(), 10, 32)
		if err != nil || key != i || p.next() != ":" {
			return nil, ErrUnsupported
		}
		v, err := verdict(p)
		if err != nil {
			return nil, err
		}
		elems = appendAttr(elems, unix.NLA_F_NESTED|uint16(i+1),
			elementAttrs(binary.NativeEndian.AppendUint32(nil, uint32(key)), &v, ""))
		sep := p.next()
		if sep == "}" {
			if i+1 != mod {
				return nil, ErrUnsupported
			}
			break
		}
		if sep != "," {
			return nil, ErrUnsupported
		}
	}
	c.setID++
	id := c.setID
	const name = "__map%d"
	err = c.emit(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.NFTA_SET_TABLE, table)
		ae.String(unix.NFTA_SET_NAME, name)
		ae.Uint32(unix.NFTA_SET_FLAGS, unix.NFT_SET_ANONYMOUS|unix.NFT_SET_CONSTANT|unix.NFT_SET_MAP)
		ae.Uint32(unix.NFTA_SET_KEY_TYPE, 4) // integer
		ae.Uint32(unix.NFTA_SET_KEY_LEN, 4)
		ae.Uint32(unix.NFTA_SET_DATA_TYPE, unix.NFT_DATA_VERDICT)
		ae.Uint32(unix.NFTA_SET_DATA_LEN, 0)
		ae.Uint32(unix.NFTA_SET_ID, id)
		ae.Nested(unix.NFTA_SET_DESC, func(nae *netlink.AttributeEncoder) error {
			nae.Uint32(unix.NFTA_SET_DESC_SIZE, uint32(mod))
			return nil
		})
		ae.Bytes(unix.NFTA_SET_USERDATA, numgenMapUserdata)
	})
	if err != nil {
		return nil, err
	}
	err = c.emit(unix.NFT_MSG_NEWSETELEM, unix.NLM_F_CREATE, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
		ae.String(unix.NFTA_SET_ELEM_LIST_SET, name)
		ae.Uint32(unix.NFTA_SET_ELEM_LIST_SET_ID, id)
		ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_LIST_ELEMENTS, elems)
	})
	if err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Numgen{Register: reg1, Modulus: uint32(mod), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: reg1, DestRegister: 0, IsDestRegSet: true, SetName: name, SetID: id},
	}, nil
}

// vdict is a parsed verdict: a code and, for jump and goto, a chain.
type vdict struct {
	code  int32
	chain string
}

func verdict(p *parser) (vdict, error) {
	switch t := p.next(); t {
	case "goto", "jump":
		chain := p.next()
		if chain == "" || chain == "}" || chain == "," {
			return vdict{}, ErrUnsupported
		}
		if t == "goto" {
			return vdict{unix.NFT_GOTO, chain}, nil
		}
		return vdict{unix.NFT_JUMP, chain}, nil
	case "drop":
		return vdict{code: nfDrop}, nil
	case "accept":
		return vdict{code: nfAccept}, nil
	case "return":
		return vdict{code: unix.NFT_RETURN}, nil
	}
	return vdict{}, ErrUnsupported
}

// elementAttrs are one element's attributes: its key, its verdict (v.code
// set or a chain named; nil verdict when none) and its comment.
func elementAttrs(key []byte, v *vdict, comment string) []byte {
	var b []byte
	b = appendAttr(b, unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_KEY, appendAttr(nil, unix.NFTA_DATA_VALUE, key))
	if v != nil {
		vd := appendAttr(nil, unix.NFTA_VERDICT_CODE, binary.BigEndian.AppendUint32(nil, uint32(v.code)))
		if v.chain != "" {
			vd = appendAttr(vd, unix.NFTA_VERDICT_CHAIN, append([]byte(v.chain), 0))
		}
		b = appendAttr(b, unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_DATA,
			appendAttr(nil, unix.NLA_F_NESTED|unix.NFTA_DATA_VERDICT, vd))
	}
	if comment != "" {
		// NFTNL_UDATA_SET_ELEM_COMMENT
		b = appendAttr(b, unix.NFTA_SET_ELEM_USERDATA, udataString(0, comment))
	}
	return b
}

// element encodes "add|delete element ip T S { key [comment "c"] [: verdict] }"
// for a set or verdict map of ipv4_addr, inet_proto and inet_service fields.
func (c *compiler) element(add bool, table, set string, toks []string) error {
	info, ok := c.sets[set]
	if !ok {
		if c.lookup == nil {
			return ErrUnsupported
		}
		var err error
		if info, err = c.lookup(table, set); err != nil {
			return err
		}
	}
	p := &parser{toks: toks}
	if p.next() != "{" {
		return ErrUnsupported
	}
	var key []byte
	for i, f := range info.Fields {
		if i > 0 && p.next() != "." {
			return ErrUnsupported
		}
		b, err := fieldBytes(f, p.next())
		if err != nil {
			return err
		}
		if len(info.Fields) > 1 {
			for len(b)%4 != 0 {
				b = append(b, 0)
			}
		}
		key = append(key, b...)
	}
	var comment string
	if p.peek() == "comment" {
		p.next()
		s, ok := quoted(p.next())
		if !ok {
			return ErrUnsupported
		}
		comment = s
	}
	var v *vdict
	if p.peek() == ":" {
		p.next()
		if !info.Verdict || !add {
			return ErrUnsupported
		}
		d, err := verdict(p)
		if err != nil {
			return err
		}
		v = &d
	} else if info.Verdict && add {
		return ErrUnsupported
	}
	if p.next() != "}" || !p.done() {
		return ErrUnsupported
	}
	typ, flags := uint16(unix.NFT_MSG_NEWSETELEM), uint16(unix.NLM_F_CREATE)
	if !add {
		typ, flags = unix.NFT_MSG_DELSETELEM, 0
	}
	elems := appendAttr(nil, unix.NLA_F_NESTED|1, elementAttrs(key, v, comment))
	return c.emit(typ, flags, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
		ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
		ae.Bytes(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_LIST_ELEMENTS, elems)
	})
}

func fieldBytes(f Field, s string) ([]byte, error) {
	switch f {
	case FieldIPv4:
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, ErrUnsupported
		}
		b := a.As4()
		return b[:], nil
	case FieldProto:
		if n, ok := protoNum(s); ok {
			return []byte{n}, nil
		}
	case FieldService:
		if n, err := strconv.ParseUint(s, 10, 16); err == nil {
			return binary.BigEndian.AppendUint16(nil, uint16(n)), nil
		}
	}
	return nil, ErrUnsupported
}

// affinityUserdata is nft's user data for an ipv4_addr set: key byte order
// big endian (2).
var affinityUserdata = []byte{0x00, 0x04, 0x02, 0x00, 0x00, 0x00}

// affinitySet encodes the proxier's session-affinity set:
// "add set ip T affinity-... { type ipv4_addr ; flags dynamic,timeout ; timeout Ns ; }".
func (c *compiler) affinitySet(table, name string, toks []string) error {
	want := []string{"{", "type", "ipv4_addr", ";", "flags", "dynamic,timeout", ";", "timeout", "", ";", "}"}
	if len(toks) != len(want) {
		return ErrUnsupported
	}
	for i, w := range want {
		if w != "" && toks[i] != w {
			return ErrUnsupported
		}
	}
	secs, ok := strings.CutSuffix(toks[8], "s")
	n, err := strconv.ParseUint(secs, 10, 32)
	if !ok || err != nil || n == 0 {
		return ErrUnsupported
	}
	c.setID++
	id := c.setID
	c.sets[name] = SetInfo{Fields: []Field{FieldIPv4}}
	return c.emit(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE, func(ae *netlink.AttributeEncoder) {
		ae.String(unix.NFTA_SET_TABLE, table)
		ae.String(unix.NFTA_SET_NAME, name)
		ae.Uint32(unix.NFTA_SET_FLAGS, unix.NFT_SET_TIMEOUT|unix.NFT_SET_EVAL)
		ae.Uint32(unix.NFTA_SET_KEY_TYPE, uint32(FieldIPv4))
		ae.Uint32(unix.NFTA_SET_KEY_LEN, 4)
		ae.Uint32(unix.NFTA_SET_ID, id)
		ae.Uint64(unix.NFTA_SET_TIMEOUT, n*1000)
		ae.Bytes(unix.NFTA_SET_USERDATA, affinityUserdata)
	})
}

// The netfilter verdicts NF_DROP and NF_ACCEPT (linux/netfilter.h).
const (
	nfDrop   = 0
	nfAccept = 1
)
