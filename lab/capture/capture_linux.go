//go:build linux

// Package capture opens AF_PACKET sockets inside lab namespaces and collects
// every frame a walk run produces. A socket is bound before any traffic is
// sent, so a capture is ready by construction; after the exchange has
// completed every frame of it is already queued, and Drain collects it
// without waiting.
package capture

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/walk"
)

// rcvBuf holds a walk's frames between send and drain.
const rcvBuf = 4 << 20

// Socket is one capture point.
type Socket struct {
	Point walk.Point
	fd    int
	// bridge is set on a bridge device: there a frame addressed to another
	// host (PACKET_OTHERHOST) was switched, not routed, and reaches the
	// device only while something (a user's tcpdump) holds it promiscuous.
	bridge bool
}

// Open binds an AF_PACKET socket to iface inside namespace n.
func Open(n *ns.NS, pt walk.Point) (*Socket, error) {
	var fd int
	bridge := false
	if l, err := n.NL.LinkByName(pt.Iface); err == nil {
		bridge = l.Type() == "bridge"
	}
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(pt.Iface)
		if err != nil {
			return err
		}
		// Protocol 0: the socket hooks nothing until bind. Created with
		// ETH_P_ALL it would hook every device first, and re-binding would
		// wait out an RCU grace period (about 15 ms) per socket.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf)
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s in %s: %w", pt.Iface, n.Name, err)
	}
	return &Socket{Point: pt, fd: fd, bridge: bridge}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Frame is a raw captured frame.
type Frame struct {
	Point walk.Point
	Dir   walk.Dir
	Time  time.Time
	Data  []byte
	Len   int
}

// Drain reads every queued frame without blocking.
func (s *Socket) Drain() ([]Frame, error) {
	var out []Frame
	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	for {
		n, oobn, flags, from, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENETDOWN) {
			return out, nil // drained; a downed interface has nothing more to show
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("reading capture %s: %w", s.Point, err)
		}
		capLen := n
		if flags&unix.MSG_TRUNC != 0 || capLen > len(buf) {
			capLen = len(buf)
		}
		f := Frame{Point: s.Point, Dir: walk.In, Data: append([]byte(nil), buf[:capLen]...), Len: n, Time: time.Now()}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			if ll.Pkttype == unix.PACKET_OUTGOING {
				f.Dir = walk.Out
			}
			if s.bridge && ll.Pkttype == unix.PACKET_OTHERHOST {
				continue
			}
		}
		if ts, ok := timestamp(oob[:oobn]); ok {
			f.Time = ts
		}
		out = append(out, f)
	}
}

func timestamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}

// Close releases the socket.
func (s *Socket) Close() { unix.Close(s.fd) }

// Set is every capture point of one walk run.
type Set struct{ Sockets []*Socket }

// OpenAll opens a socket at each point; open returns the namespace of an
// object. A point whose interface does not exist is an error.
func OpenAll(open func(object string) (*ns.NS, error), pts []walk.Point) (*Set, error) {
	s := &Set{}
	for _, pt := range pts {
		n, err := open(pt.Object)
		if err != nil {
			s.Close()
			return nil, err
		}
		sock, err := Open(n, pt)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Sockets = append(s.Sockets, sock)
	}
	return s, nil
}

// Drain collects every queued frame of every socket, in time order.
func (s *Set) Drain() ([]Frame, error) {
	var all []Frame
	for _, sock := range s.Sockets {
		fs, err := sock.Drain()
		if err != nil {
			return nil, err
		}
		all = append(all, fs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	return all, nil
}

// Close closes every socket. Each close of a hooked packet socket waits
// for an RCU grace period, so they close in parallel: one wait, not one each.
func (s *Set) Close() {
	var wg sync.WaitGroup
	for _, sock := range s.Sockets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sock.Close()
		}()
	}
	wg.Wait()
}
