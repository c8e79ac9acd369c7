package capture

import (
	"bufio"
	"encoding/binary"
	"io"
	"time"
)

// PcapngWriter writes one pcapng section with an interface block per capture
// point ("object/iface") and the packet direction in each Enhanced Packet
// Block's epb_flags, which Wireshark shows as "Direction" and tshark filters
// with frame.packet_flags_direction. gopacket's pcapgo.NgWriter writes no
// packet options, so it cannot carry the direction; this writer is that small.
type PcapngWriter struct {
	w      *bufio.Writer
	ifaces map[string]uint32
}

const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 0x00000001
	blockEPB = 0x00000006

	optEnd      = 0
	optComment  = 1
	optIfName   = 2
	optIfDesc   = 3
	optTsresol  = 9
	optEPBFlags = 2

	linkEthernet = 1
)

// NewPcapngWriter starts a section; comment goes in the section header.
func NewPcapngWriter(w io.Writer, comment string) (*PcapngWriter, error) {
	pw := &PcapngWriter{w: bufio.NewWriter(w), ifaces: map[string]uint32{}}
	body := make([]byte, 16)
	binary.LittleEndian.PutUint32(body[0:], 0x1A2B3C4D)
	binary.LittleEndian.PutUint16(body[4:], 1)
	binary.LittleEndian.PutUint16(body[6:], 0)
	binary.LittleEndian.PutUint64(body[8:], ^uint64(0)) // section length unknown
	body = appendOpts(body, opt{optComment, []byte(comment)})
	return pw, pw.block(blockSHB, body)
}

type opt struct {
	code uint16
	val  []byte
}

func appendOpts(b []byte, opts ...opt) []byte {
	for _, o := range opts {
		if len(o.val) == 0 {
			continue
		}
		b = binary.LittleEndian.AppendUint16(b, o.code)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(o.val)))
		b = append(b, o.val...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return binary.LittleEndian.AppendUint32(b, optEnd) // opt_endofopt + length 0
}

func (pw *PcapngWriter) block(typ uint32, body []byte) error {
	total := uint32(12 + len(body))
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:], typ)
	binary.LittleEndian.PutUint32(hdr[4:], total)
	if _, err := pw.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := pw.w.Write(body); err != nil {
		return err
	}
	var tr [4]byte
	binary.LittleEndian.PutUint32(tr[:], total)
	_, err := pw.w.Write(tr[:])
	return err
}

// AddInterface declares a capture point; name is "object/iface".
func (pw *PcapngWriter) AddInterface(name, description string) (uint32, error) {
	if id, ok := pw.ifaces[name]; ok {
		return id, nil
	}
	body := make([]byte, 8)
	binary.LittleEndian.PutUint16(body[0:], linkEthernet)
	binary.LittleEndian.PutUint32(body[4:], 0) // no snap length limit
	body = appendOpts(body, opt{optIfName, []byte(name)}, opt{optIfDesc, []byte(description)},
		opt{optTsresol, []byte{9}})
	id := uint32(len(pw.ifaces))
	pw.ifaces[name] = id
	return id, pw.block(blockIDB, body)
}

// WritePacket writes one frame; out marks it outbound, otherwise inbound.
func (pw *PcapngWriter) WritePacket(iface uint32, ts time.Time, data []byte, origLen int, out bool, comment string) error {
	body := make([]byte, 20, 20+len(data)+32)
	ns := uint64(ts.UnixNano())
	binary.LittleEndian.PutUint32(body[0:], iface)
	binary.LittleEndian.PutUint32(body[4:], uint32(ns>>32))
	binary.LittleEndian.PutUint32(body[8:], uint32(ns))
	binary.LittleEndian.PutUint32(body[12:], uint32(len(data)))
	binary.LittleEndian.PutUint32(body[16:], uint32(origLen))
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	flags := uint32(1) // inbound
	if out {
		flags = 2
	}
	body = appendOpts(body, opt{optEPBFlags, binary.LittleEndian.AppendUint32(nil, flags)},
		opt{optComment, []byte(comment)})
	return pw.block(blockEPB, body)
}

// Flush writes buffered blocks out.
func (pw *PcapngWriter) Flush() error { return pw.w.Flush() }
