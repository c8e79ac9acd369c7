//go:build linux

package kernel

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// nfacctAnswer builds a kernel answer payload: nfgenmsg, then attributes.
func nfacctAnswer(attrs ...*nl.RtAttr) []byte {
	b := (&nl.Nfgenmsg{NfgenFamily: unix.AF_UNSPEC, Version: nl.NFNETLINK_V0}).Serialize()
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return b
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func TestDecodeNFAcctReadsNamePacketsAndBytes(t *testing.T) {
	msg := nfacctAnswer(nl.NewRtAttr(nfacctName, nl.ZeroTerminated("localhost_nps_accepted_pkts")),
		nl.NewRtAttr(nfacctPkts, be64(3)), nl.NewRtAttr(nfacctBytes, be64(180)),
		nl.NewRtAttr(4, []byte{0, 0, 0, 0})) // NFACCT_USE, skipped
	c, err := decodeNFAcct(msg)
	if err != nil {
		t.Fatal(err)
	}
	if c != (NFAcctCounter{Name: "localhost_nps_accepted_pkts", Packets: 3, Bytes: 180}) {
		t.Errorf("decoded %+v", c)
	}
}

func TestDecodeNFAcctRefusesIncompleteAnswers(t *testing.T) {
	name := nl.NewRtAttr(nfacctName, nl.ZeroTerminated("x"))
	for what, msg := range map[string][]byte{
		"no bytes":        nfacctAnswer(name, nl.NewRtAttr(nfacctPkts, be64(1))),
		"short packets":   nfacctAnswer(name, nl.NewRtAttr(nfacctPkts, []byte{1}), nl.NewRtAttr(nfacctBytes, be64(1))),
		"unterminated":    nfacctAnswer(nl.NewRtAttr(nfacctName, []byte("x")), nl.NewRtAttr(nfacctPkts, be64(1)), nl.NewRtAttr(nfacctBytes, be64(1))),
		"no nfgenmsg":     {1, 2},
		"no name":         nfacctAnswer(nl.NewRtAttr(nfacctPkts, be64(1)), nl.NewRtAttr(nfacctBytes, be64(1))),
		"too long a name": nfacctAnswer(nl.NewRtAttr(nfacctName, nl.ZeroTerminated("an_nfacct_name_of_32_characters_")), nl.NewRtAttr(nfacctPkts, be64(1)), nl.NewRtAttr(nfacctBytes, be64(1))),
	} {
		if c, err := decodeNFAcct(msg); err == nil {
			t.Errorf("%s: decoded %+v, want an error", what, c)
		}
	}
	// Every truncation of a good answer lacks something: an error, never
	// a panic or a read past its end.
	good := nfacctAnswer(name, nl.NewRtAttr(nfacctPkts, be64(1)), nl.NewRtAttr(nfacctBytes, be64(1)))
	for i := range good {
		if c, err := decodeNFAcct(slices.Clip(good[:i])); err == nil {
			t.Errorf("the first %d of %d bytes decoded to %+v", i, len(good), c)
		}
	}
}

// The request is the one kube-proxy sends: NFNL_SUBSYS_ACCT (7) in the
// type's high byte, the command in the low one, an AF_NETLINK nfgenmsg and
// the NUL-terminated name.
func TestNFAcctRequestIsKubeProxysMessage(t *testing.T) {
	b := nfacctRequest(nfnlMsgAcctNew, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK, "ct_state_invalid_dropped_pkts").Serialize()
	if typ := binary.NativeEndian.Uint16(b[4:6]); typ != 7<<8|0 {
		t.Errorf("message type %#x, want 0x700 (NFNL_SUBSYS_ACCT, NFNL_MSG_ACCT_NEW)", typ)
	}
	if fl := binary.NativeEndian.Uint16(b[6:8]); fl != unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK {
		t.Errorf("flags %#x", fl)
	}
	if b[16] != unix.AF_NETLINK || b[17] != nl.NFNETLINK_V0 {
		t.Errorf("nfgenmsg family %d version %d, want AF_NETLINK, 0", b[16], b[17])
	}
	attrs, err := nl.ParseRouteAttr(b[20:])
	if err != nil || len(attrs) != 1 || attrs[0].Attr.Type != nfacctName || string(attrs[0].Value) != "ct_state_invalid_dropped_pkts\x00" {
		t.Errorf("attributes %+v (%v), want one NFACCT_NAME", attrs, err)
	}
	if int(binary.NativeEndian.Uint32(b[0:4])) != len(b) {
		t.Errorf("header length %d, message %d bytes", binary.NativeEndian.Uint32(b[0:4]), len(b))
	}
	dump := nfacctRequest(nfnlMsgAcctGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, "").Serialize()
	if len(dump) != 20 || binary.NativeEndian.Uint16(dump[4:6]) != 7<<8|1 {
		t.Errorf("a dump is a bare NFNL_MSG_ACCT_GET of 20 bytes, got % x", dump)
	}
}
