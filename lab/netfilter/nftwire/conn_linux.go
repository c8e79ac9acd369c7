//go:build linux

package nftwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// answerTimeout bounds every wait for the kernel's answer, so a lost
// reply is an error, never a hang.
const answerTimeout = 30 * time.Second

// Conn is a netlink socket to nf_tables, bound to the network namespace
// of the thread that opened it (open it inside the namespace; it stays
// there after the thread switches back).
type Conn struct {
	fd  int
	seq uint32
}

// Open opens a Conn in the calling thread's network namespace.
func Open() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	c := &Conn{fd: fd, seq: uint32(time.Now().Unix())}
	tv := unix.NsecToTimeval(answerTimeout.Nanoseconds())
	for _, o := range []struct {
		level, opt, val int
	}{
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4 << 20},
		{unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1},
		{unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.val); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("netlink socket option %d: %w", o.opt, err)
		}
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return c, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

func appendHeader(b []byte, typ, flags uint16, seq uint32, payload int) []byte {
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+payload))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	return binary.NativeEndian.AppendUint32(b, 0)
}

func appendMsg(b []byte, typ, flags uint16, seq uint32, data []byte) []byte {
	b = appendHeader(b, typ, flags, seq, len(data))
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// batchData is the nfgenmsg of a batch's begin and end: resource id
// NFNL_SUBSYS_NFTABLES, big endian.
var batchData = []byte{unix.AF_UNSPEC, 0, 0, unix.NFNL_SUBSYS_NFTABLES}

// Send sends msgs as one batch, one transaction: all of it or none of it
// takes effect. Only the last message asks for an acknowledgement, so a
// batch of any size gets one answer when it succeeds; the kernel reports
// every failing message before that answer. The error names the program
// line of the first failing message.
func (c *Conn) Send(msgs []Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	size := 2 * unix.NLMSG_HDRLEN * (len(msgs) + 2)
	for _, m := range msgs {
		size += len(m.Data) + 4
	}
	begin := c.seq + 1
	c.seq += uint32(len(msgs)) + 2
	buf := make([]byte, 0, size)
	buf = appendMsg(buf, unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, begin, batchData)
	for i, m := range msgs {
		flags := unix.NLM_F_REQUEST | m.Flags
		if i == len(msgs)-1 {
			flags |= unix.NLM_F_ACK
		}
		buf = appendMsg(buf, unix.NFNL_SUBSYS_NFTABLES<<8|m.Type, flags, begin+1+uint32(i), m.Data)
	}
	buf = appendMsg(buf, unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, begin+uint32(len(msgs))+1, batchData)
	if len(buf) > 200<<10 {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, len(buf)+(64<<10)); err != nil {
			return fmt.Errorf("netlink send buffer of %d bytes: %w", len(buf), err)
		}
	}
	if err := unix.Sendto(c.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send of %d messages: %w", len(msgs), err)
	}
	last := begin + uint32(len(msgs))
	var first error
	return c.answers(func(seq uint32, errno syscall.Errno, text string) (bool, error) {
		if errno != 0 && first == nil {
			switch {
			case seq > begin && seq <= last:
				first = fmt.Errorf("line %d: %w%s", msgs[seq-begin-1].Line, errno, text)
			default:
				first = fmt.Errorf("batch: %w%s", errno, text)
			}
		}
		if seq == last || seq == begin {
			return true, first
		}
		return false, nil
	})
}

// answers reads the kernel's messages until done says so; done sees each
// acknowledgement or error. Other messages go to other, if set.
func (c *Conn) answers(done func(seq uint32, errno syscall.Errno, text string) (bool, error), other ...func(syscall.NetlinkMessage)) error {
	rb := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(c.fd, rb, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("no answer from nf_tables in %s", answerTimeout)
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		ms, err := syscall.ParseNetlinkMessage(rb[:n])
		if err != nil {
			return fmt.Errorf("netlink answer: %w", err)
		}
		for _, m := range ms {
			if m.Header.Type != unix.NLMSG_ERROR {
				for _, o := range other {
					o(m)
				}
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("netlink answer: short error message")
			}
			errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data[:4])))
			fin, err := done(m.Header.Seq, errno, extAckText(m))
			if fin {
				return err
			}
		}
	}
}

// extAckText is the kernel's extended-ack message of an error, if any
// (": <text>"), read past the echoed header (NETLINK_CAP_ACK).
func extAckText(m syscall.NetlinkMessage) string {
	if m.Header.Flags&unix.NLM_F_ACK_TLVS == 0 || len(m.Data) < 4+unix.NLMSG_HDRLEN {
		return ""
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4+unix.NLMSG_HDRLEN:])
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == unix.NLMSGERR_ATTR_MSG {
			return ": " + ad.String()
		}
	}
	return ""
}

// SetInfo asks the kernel for one set's key fields and whether it is a
// verdict map: a SetLookup.
func (c *Conn) SetInfo(table, set string) (SetInfo, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_TABLE, table)
	ae.String(unix.NFTA_SET_NAME, set)
	attrs, err := ae.Encode()
	if err != nil {
		return SetInfo{}, err
	}
	c.seq++
	seq := c.seq
	buf := appendMsg(nil, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETSET, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq,
		append([]byte{unix.NFPROTO_IPV4, 0, 0, 0}, attrs...))
	if err := unix.Sendto(c.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return SetInfo{}, fmt.Errorf("netlink get set %s: %w", set, err)
	}
	var keyType, keyLen, flags, dataType uint32
	var got bool
	var derr error
	err = c.answers(func(s uint32, errno syscall.Errno, text string) (bool, error) {
		if s != seq {
			return false, nil
		}
		if errno != 0 {
			return true, fmt.Errorf("set %s in table %s: %w%s", set, table, errno, text)
		}
		return true, nil
	}, func(m syscall.NetlinkMessage) {
		if m.Header.Seq != seq || len(m.Data) < 4 {
			return
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			derr = err
			return
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_KEY_TYPE:
				keyType = ad.Uint32()
			case unix.NFTA_SET_KEY_LEN:
				keyLen = ad.Uint32()
			case unix.NFTA_SET_FLAGS:
				flags = ad.Uint32()
			case unix.NFTA_SET_DATA_TYPE:
				dataType = ad.Uint32()
			}
		}
		got = true
	})
	if err != nil {
		return SetInfo{}, err
	}
	if derr != nil || !got {
		return SetInfo{}, fmt.Errorf("set %s in table %s: no description in the kernel's answer", set, table)
	}
	return setInfo(set, keyType, keyLen, flags, dataType)
}

// setInfo checks that a set is one Compile can encode elements for.
func setInfo(set string, keyType, keyLen, flags, dataType uint32) (SetInfo, error) {
	if flags&(unix.NFT_SET_INTERVAL|unix.NFT_SET_OBJECT|unix.NFT_SET_ANONYMOUS) != 0 {
		return SetInfo{}, fmt.Errorf("set %s (flags %#x): %w", set, flags, ErrUnsupported)
	}
	fields, err := DecodeKeyType(keyType, keyLen)
	if err != nil {
		return SetInfo{}, fmt.Errorf("set %s: %w", set, err)
	}
	info := SetInfo{Fields: fields}
	if flags&unix.NFT_SET_MAP != 0 {
		if dataType != unix.NFT_DATA_VERDICT {
			return SetInfo{}, fmt.Errorf("map %s with data type %#x: %w", set, dataType, ErrUnsupported)
		}
		info.Verdict = true
	}
	return info, nil
}

// DumpTable returns the kernel's netlink answers describing table, raw
// (attributes as the kernel wrote them, padding zeroed): the table, its
// chains, rules, sets and every set's elements, in the kernel's order. It
// is how tests compare two namespaces byte for byte.
func (c *Conn) DumpTable(table string) ([][]byte, error) {
	var out [][]byte
	dump := func(typ uint16, set string) ([][]byte, error) {
		ae := netlink.NewAttributeEncoder()
		switch typ {
		case unix.NFT_MSG_GETTABLE:
			ae.String(unix.NFTA_TABLE_NAME, table)
		case unix.NFT_MSG_GETSETELEM:
			ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, table)
			ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
		default:
			ae.String(1, table) // NFTA_{CHAIN,RULE,SET}_TABLE
		}
		attrs, err := ae.Encode()
		if err != nil {
			return nil, err
		}
		flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
		if typ != unix.NFT_MSG_GETTABLE {
			flags |= unix.NLM_F_DUMP
		}
		c.seq++
		seq := c.seq
		buf := appendMsg(nil, unix.NFNL_SUBSYS_NFTABLES<<8|typ, flags, seq, append([]byte{unix.NFPROTO_IPV4, 0, 0, 0}, attrs...))
		if err := unix.Sendto(c.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, err
		}
		var msgs [][]byte
		rb := make([]byte, 1<<20)
		for {
			n, _, err := unix.Recvfrom(c.fd, rb, 0)
			if err != nil {
				return nil, err
			}
			ms, err := syscall.ParseNetlinkMessage(rb[:n])
			if err != nil {
				return nil, err
			}
			for _, m := range ms {
				if m.Header.Seq != seq {
					continue
				}
				switch m.Header.Type {
				case unix.NLMSG_DONE:
					return msgs, nil
				case unix.NLMSG_ERROR:
					if errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m.Data[:4]))); errno != 0 {
						return nil, errno
					}
					if typ == unix.NFT_MSG_GETTABLE {
						return msgs, nil
					}
				default:
					msgs = append(msgs, append(binary.NativeEndian.AppendUint16(nil, m.Header.Type), m.Data...))
				}
			}
		}
	}
	for _, typ := range []uint16{unix.NFT_MSG_GETTABLE, unix.NFT_MSG_GETCHAIN, unix.NFT_MSG_GETRULE, unix.NFT_MSG_GETSET} {
		msgs, err := dump(typ, "")
		if err != nil {
			return nil, fmt.Errorf("dump %d of table %s: %w", typ, table, err)
		}
		out = append(out, msgs...)
		if typ != unix.NFT_MSG_GETSET {
			continue
		}
		for _, m := range msgs {
			ad, err := netlink.NewAttributeDecoder(m[2+4:])
			if err != nil {
				return nil, err
			}
			for ad.Next() {
				if ad.Type() == unix.NFTA_SET_NAME {
					elems, err := dump(unix.NFT_MSG_GETSETELEM, ad.String())
					if err != nil {
						return nil, fmt.Errorf("dump of set %s in table %s: %w", ad.String(), table, err)
					}
					out = append(out, elems...)
				}
			}
		}
	}
	return out, nil
}
