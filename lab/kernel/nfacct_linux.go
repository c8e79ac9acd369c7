//go:build linux

package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/ns"
)

// NFAcctObjects are the nfacct objects kube-proxy v1.30+ creates at start
// (kubernetes pkg/proxy/metrics/metrics.go: IPTablesCTStateInvalidDroppedNFAcctCounter
// and LocalhostNodePortAcceptedNFAcctCounter). Its iptables rules name them
// in "-m nfacct --nfacct-name", and a restore naming a missing one fails.
var NFAcctObjects = []string{"ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts"}

// NFAcctCounter is one nfacct object and what it has counted.
type NFAcctCounter struct {
	Name           string
	Packets, Bytes uint64
}

// nfnetlink_acct's messages and attributes (linux
// include/uapi/linux/netfilter/nfnetlink_acct.h), as kube-proxy's
// pkg/proxy/util/nfacct/nfacct_linux.go sends them.
const (
	nfnlMsgAcctNew = 0 // NFNL_MSG_ACCT_NEW
	nfnlMsgAcctGet = 1 // NFNL_MSG_ACCT_GET
	nfacctName     = 1 // NFACCT_NAME, a NUL-terminated string
	nfacctPkts     = 2 // NFACCT_PKTS, big-endian u64
	nfacctBytes    = 3 // NFACCT_BYTES, big-endian u64
	// nfacctMaxName is NFACCT_NAME_MAX (32) less the NUL.
	nfacctMaxName = 31
	// nlaTypeMask is NLA_TYPE_MASK: an attribute type without the nested
	// and byte-order flags.
	nlaTypeMask = 0x3fff
)

// EnsureNFAcct is what kube-proxy's NewProxier does in the node's
// namespace: nfacct.New (a GET that must succeed or answer ENOENT, else
// the kernel has no nfnetlink_acct) and Ensure of each of NFAcctObjects (GET,
// then NEW if missing). nil means both objects exist and kube-proxy adds
// its nfacct matches; an error says why it leaves them out. The netlink
// socket is opened inside the namespace, so objects are only ever created
// there (they are per network namespace and die with it).
func EnsureNFAcct(n *ns.NS) error {
	return n.Do(func() error {
		if _, err := nfacctGet("IMayExist"); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("nfacct in %s: nfnetlink_acct not available: %w", n.Name, err)
		}
		for _, name := range NFAcctObjects {
			if err := nfacctEnsure(name); err != nil {
				return fmt.Errorf("nfacct object %s in %s: %w", name, n.Name, err)
			}
		}
		return nil
	})
}

// NFAcctList dumps the nfacct objects of a lab namespace (`nfacct list`).
func NFAcctList(n *ns.NS) ([]NFAcctCounter, error) {
	var out []NFAcctCounter
	err := n.Do(func() error {
		var err error
		out, err = NFAcctListHere()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("nfacct list in %s: %w", n.Name, err)
	}
	return out, nil
}

// NFAcctListHere dumps the nfacct objects of the calling thread's
// namespace: the host's, outside ns.Do. It only reads (a test proves the
// lab created none there).
func NFAcctListHere() ([]NFAcctCounter, error) {
	msgs, err := nfacctRequest(nfnlMsgAcctGet, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, "").Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, err
	}
	out := make([]NFAcctCounter, 0, len(msgs))
	for _, m := range msgs {
		c, err := decodeNFAcct(m)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func nfacctEnsure(name string) error {
	_, err := nfacctGet(name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	_, err = nfacctRequest(nfnlMsgAcctNew, unix.NLM_F_REQUEST|unix.NLM_F_CREATE|unix.NLM_F_ACK, name).Execute(unix.NETLINK_NETFILTER, 0)
	return err
}

func nfacctGet(name string) (NFAcctCounter, error) {
	msgs, err := nfacctRequest(nfnlMsgAcctGet, unix.NLM_F_REQUEST|unix.NLM_F_ACK, name).Execute(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return NFAcctCounter{}, err
	}
	if len(msgs) != 1 {
		return NFAcctCounter{}, fmt.Errorf("nfacct get %s: %d answers, want 1", name, len(msgs))
	}
	return decodeNFAcct(msgs[0])
}

// nfacctRequest is an nfnetlink_acct message: the netlink header with
// NFNL_SUBSYS_ACCT in the type's high byte, the nfgenmsg, and the name
// attribute unless name is "" (a dump). Execute opens its socket in the
// calling thread's namespace.
func nfacctRequest(cmd int, flags int, name string) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(cmd|unix.NFNL_SUBSYS_ACCT<<8, flags)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: unix.AF_NETLINK, Version: nl.NFNETLINK_V0})
	if name != "" {
		req.AddData(nl.NewRtAttr(nfacctName, nl.ZeroTerminated(name)))
	}
	return req
}

// decodeNFAcct reads one nfnetlink_acct answer (the payload after the
// netlink header): the nfgenmsg, then the name, packets and bytes
// attributes. Any of them missing or short is an error, not a zero.
func decodeNFAcct(msg []byte) (NFAcctCounter, error) {
	var c NFAcctCounter
	if len(msg) < nl.SizeofNfgenmsg {
		return c, fmt.Errorf("nfacct answer of %d bytes, shorter than its nfgenmsg", len(msg))
	}
	seen := 0
	// nl.ParseRouteAttr panics on a truncated attribute, so walk them here.
	for b := msg[nl.SizeofNfgenmsg:]; len(b) > 0; {
		if len(b) < unix.SizeofNlAttr {
			return c, fmt.Errorf("nfacct answer: %d trailing bytes, shorter than an attribute header", len(b))
		}
		l, typ := int(binary.NativeEndian.Uint16(b[0:2])), binary.NativeEndian.Uint16(b[2:4])&nlaTypeMask
		if l < unix.SizeofNlAttr || l > len(b) {
			return c, fmt.Errorf("nfacct answer: attribute %d of length %d in %d bytes", typ, l, len(b))
		}
		v := b[unix.SizeofNlAttr:l]
		b = b[min(len(b), (l+unix.NLA_ALIGNTO-1) & ^(unix.NLA_ALIGNTO-1)):]
		switch typ {
		case nfacctName:
			if len(v) == 0 || v[len(v)-1] != 0 || len(v)-1 > nfacctMaxName {
				return c, fmt.Errorf("nfacct answer: bad name attribute %q", v)
			}
			c.Name = string(v[:len(v)-1])
			seen |= 1
		case nfacctPkts, nfacctBytes:
			if len(v) != 8 {
				return c, fmt.Errorf("nfacct answer: counter attribute %d of %d bytes, want 8", typ, len(v))
			}
			if typ == nfacctPkts {
				c.Packets, seen = binary.BigEndian.Uint64(v), seen|2
			} else {
				c.Bytes, seen = binary.BigEndian.Uint64(v), seen|4
			}
		}
	}
	if seen != 7 {
		return c, fmt.Errorf("nfacct answer %q lacks its name, packets or bytes", c.Name)
	}
	return c, nil
}
