// Package walk derives what every hop of a packet walk must show and checks
// captured packets against it. It is pure: capture turns kernel packets into
// walk.Packets, and walk never touches the kernel, so every verdict is
// unit-tested with synthetic packets.
package walk

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Dir is the direction of a packet at an interface, from the interface's
// point of view: "in" was received, "out" was transmitted.
type Dir string

// Directions.
const (
	In  Dir = "in"
	Out Dir = "out"
)

// Point is a capture point: an interface in a lab object's namespace.
type Point struct {
	Object string // topology name: node51, pod61, vpc, ...
	Iface  string
}

func (p Point) String() string { return p.Object + "/" + p.Iface }

// Packet is one captured frame, decoded to the headers a walk checks.
type Packet struct {
	Point  Point
	Dir    Dir
	Time   time.Time
	Frame  int // 1-based frame number in the run's pcapng
	SrcMAC net.HardwareAddr
	DstMAC net.HardwareAddr
	Proto  string // icmp, tcp, udp, arp or the EtherType
	Src    netip.Addr
	Dst    netip.Addr
	// Ports for TCP and UDP; for ICMP echo, SrcPort is the identifier.
	SrcPort, DstPort uint16
	TCP              TCPInfo
	ICMPType         uint8
	Payload          []byte
	// IPID and IPLen identify a packet across a routed hop and size it.
	IPID  uint16
	IPLen int
	// ARPOp is an ARP packet's operation (1 request, 2 reply); Src and Dst
	// are then its sender's and target's protocol addresses.
	ARPOp uint16
}

// TCPInfo is what identifies a TCP segment of a walk's connection: NAT
// rewrites addresses and ports but never the sequence numbers.
type TCPInfo struct {
	SYN, ACK, RST, FIN bool
	Seq, Ack           uint32
}

// Decode turns an Ethernet frame into a Packet.
func Decode(data []byte) Packet {
	var p Packet
	pk := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Lazy)
	eth, ok := pk.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !ok {
		p.Proto = "?"
		return p
	}
	p.SrcMAC, p.DstMAC = eth.SrcMAC, eth.DstMAC
	p.Proto = strings.ToLower(eth.EthernetType.String())
	if arp, ok := pk.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
		// Who has Dst, tell Src: what a dead next hop leaves in a capture.
		p.Proto, p.ARPOp = "arp", arp.Operation
		p.Src, _ = netip.AddrFromSlice(arp.SourceProtAddress)
		p.Dst, _ = netip.AddrFromSlice(arp.DstProtAddress)
		return p
	}
	ip, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		return p
	}
	p.IPID, p.IPLen = ip.Id, int(ip.Length)
	p.Src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
	p.Dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	p.Proto = strings.ToLower(ip.Protocol.String())
	switch l := pk.TransportLayer().(type) {
	case *layers.TCP:
		p.SrcPort, p.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		p.TCP = TCPInfo{SYN: l.SYN, ACK: l.ACK, RST: l.RST, FIN: l.FIN, Seq: l.Seq, Ack: l.Ack}
		p.Payload = l.Payload
	case *layers.UDP:
		p.SrcPort, p.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		p.Payload = l.Payload
	}
	if ic, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		p.Proto = "icmp"
		p.ICMPType = ic.TypeCode.Type()
		p.SrcPort = ic.Id
		p.Payload = ic.Payload
	}
	return p
}

// Summary is a one-line view of the headers, as tcpdump -e would show them.
func (p Packet) Summary() string {
	if !p.Src.IsValid() {
		return fmt.Sprintf("%s > %s %s", p.SrcMAC, p.DstMAC, p.Proto)
	}
	return fmt.Sprintf("%s > %s, %s > %s %s", p.SrcMAC, p.DstMAC,
		hostPort(p.Src, p.SrcPort, p.Proto), hostPort(p.Dst, p.DstPort, p.Proto), p.detail())
}

func (p Packet) detail() string {
	switch p.Proto {
	case "icmp":
		switch p.ICMPType {
		case layers.ICMPv4TypeEchoRequest:
			return fmt.Sprintf("ICMP echo request id %d", p.SrcPort)
		case layers.ICMPv4TypeEchoReply:
			return fmt.Sprintf("ICMP echo reply id %d", p.SrcPort)
		}
		return fmt.Sprintf("ICMP type %d", p.ICMPType)
	case "tcp":
		var f []string
		for _, x := range []struct {
			on   bool
			name string
		}{{p.TCP.SYN, "S"}, {p.TCP.FIN, "F"}, {p.TCP.RST, "R"}, {p.TCP.ACK, "."}} {
			if x.on {
				f = append(f, x.name)
			}
		}
		return fmt.Sprintf("TCP [%s] seq %d", strings.Join(f, ""), p.TCP.Seq)
	case "udp":
		return fmt.Sprintf("UDP length %d", len(p.Payload))
	case "arp":
		if p.ARPOp == layers.ARPRequest {
			return fmt.Sprintf("ARP who-has %s tell %s", p.Dst, p.Src)
		}
		return fmt.Sprintf("ARP reply %s is-at %s", p.Src, p.SrcMAC)
	}
	return p.Proto
}

func hostPort(a netip.Addr, port uint16, proto string) string {
	if proto == "icmp" || port == 0 {
		return a.String()
	}
	return fmt.Sprintf("%s.%d", a, port)
}
