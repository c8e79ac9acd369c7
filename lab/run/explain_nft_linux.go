//go:build linux

package run

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/labctl/labctl/lab/ns"

	"github.com/labctl/labctl/lab/walk"
)

// NFTList runs `nft list <what...>` in an object's namespace.
func (s *Session) NFTList(obj string, what ...string) (string, error) {
	h, err := s.NS(obj)
	if err != nil {
		return "", err
	}
	var out []byte
	err = h.Do(func() error {
		out, err = exec.Command("nft", append([]string{"list"}, what...)...).CombinedOutput()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("nft list %v in %s: %w: %s", what, h.Name, err, out)
	}
	return string(out), nil
}

// nftStopped names, on a node in nftables mode where a Service walk
// stopped, the element kube-proxy's service-ips verdict map lacks for the
// walk's Service port: the packet then matches no Service chain, is not
// translated, and cluster-ips-check rejects it (a ClusterIP with no such
// port).
func (s *Session) nftStopped(dec string, r *walk.Report) []string {
	if !s.Topo.NFTablesMode() || s.Topo.Node(dec) == nil || r.Expectation == nil {
		return nil
	}
	svc := walk.ServiceOf(s.Topo, r.Expectation.Walk)
	if svc == nil || r.Expectation.Walk.Via != "" {
		return nil
	}
	key := fmt.Sprintf("%s . %s . %d", svc.IP, svc.Protocol, svc.Port)
	listing, err := s.NFTList(dec, "map", "ip", kubeProxyTable, "service-ips")
	if err != nil {
		return []string{"where it stopped: " + dec + ": " + err.Error()}
	}
	if NFTMapHasElement(listing, key) {
		return nil
	}
	return []string{fmt.Sprintf("where it stopped: %s: kube-proxy's verdict map service-ips (table ip kube-proxy) has no element %s "+
		"for Service %s/%s: the packet matches no Service chain (%s), is never DNATed, and cluster-ips-check rejects it",
		dec, key, svc.Namespace, svc.Name, svc.SVCChain)}
}

// nftWatch is `nft monitor trace` in the nodes that translate a Service
// flow in nftables mode: kube-proxy's rules there keep no counters, so
// the trace of the walk's own packets is the kernel's word on which map
// element, Service chain and endpoint chain matched. The trace flag is
// set by a table of labctl's own (labctl-trace-<pid>) on the client's
// packets to the Service only; stop removes it.
type nftWatch struct {
	mons   map[string]*nftMonitor
	client netip.Addr // the packets traced are this client's to the Service
	once   sync.Once
	traced map[string][]*NFTTracedPacket
}

type nftMonitor struct{ traceMonitor }

func nftTraceTable() string { return fmt.Sprintf("labctl-trace-%d", os.Getpid()) }

var nftTraceTableName = regexp.MustCompile(`(?m)^table ip (labctl-trace-(\d+))$`)

// nftMarkerPorts are the UDP ports of the monitors' readiness markers.
const nftMarkerBase = 39000

// watchNFT starts the monitors and returns once each has reported a marker
// packet sent after it started.
func (s *Session) watchNFT(nodes []string, client netip.Addr, dst netip.AddrPort, proto string) (*nftWatch, error) {
	w := &nftWatch{mons: map[string]*nftMonitor{}, client: client}
	match := fmt.Sprintf("ip saddr %s ip daddr %s meta l4proto %s th dport %d meta nftrace set 1", client, dst.Addr(), proto, dst.Port())
	table := fmt.Sprintf("table ip %s {\n chain pre { type filter hook prerouting priority -400; %s; }\n"+
		" chain out { type filter hook output priority -400; %s; ip daddr 127.0.0.1 udp dport %d-%d meta nftrace set 1; }\n}\n",
		nftTraceTable(), match, match, nftMarkerBase, nftMarkerBase+999)
	for _, n := range nodes {
		h, err := s.NS(n)
		if err != nil {
			w.stop()
			return nil, err
		}
		m := &nftMonitor{traceMonitor{h: h}}
		w.mons[n] = m
		err = h.Do(func() error {
			load := exec.Command("nft", "-f", "-")
			load.Stdin = strings.NewReader(table)
			if b, err := load.CombinedOutput(); err != nil {
				return fmt.Errorf("nft -f (the walk's trace table): %w: %s", err, b)
			}
			return nil
		})
		if err == nil {
			err = m.start(nil, "nft", "monitor", "trace")
		}
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("nft monitor trace in %s: %w", h.Name, err)
		}
	}
	for _, m := range w.mons {
		if err := m.sync(); err != nil {
			w.stop()
			return nil, err
		}
	}
	return w, nil
}

// sync sends marker packets until the monitor reports one.
func (m *nftMonitor) sync() error {
	m.marker = (m.marker + 1) % 1000
	port := nftMarkerBase + m.marker
	want := "udp dport " + strconv.Itoa(port) + " "
	if m.awaitMarker(port, want, "labctl nft trace marker") {
		return nil
	}
	return fmt.Errorf("nft monitor trace in %s reported no trace of its marker", m.h.Name)
}

// stop flushes and ends the monitors, removes the trace table and keeps
// each node's traced packets. Only the first call does it; nil-safe.
func (w *nftWatch) stop() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		w.traced = map[string][]*NFTTracedPacket{}
		for n, m := range w.mons {
			if m.running() {
				_ = m.sync()
			}
			lines := m.end()
			_ = m.h.Do(func() error { return exec.Command("nft", "delete", "table", "ip", nftTraceTable()).Run() })
			w.traced[n] = ParseNFTTrace(lines)
		}
	})
}

// explain is what kube-proxy's table did with a packet in a node, for
// walk -x: nothing for a node or packet not traced (replies, other nodes),
// and a note when a traced client packet is missing from the trace.
func (w *nftWatch) explain(obj string, out *walk.HopResult, in *walk.HopResult) []string {
	if w == nil || w.mons[obj] == nil {
		return nil
	}
	nt := w.traced[obj]
	if np := findNFT(nt, out.Seen.IPID, out.Seen.Src); np != nil {
		return NFTExplain(obj, np)
	}
	if in != nil {
		if np := findNFT(nt, in.Seen.IPID, in.Seen.Src); np != nil {
			return NFTExplain(obj, np)
		}
	}
	if out.Seen.Src == w.client || (in != nil && in.Seen.Src == w.client) {
		return []string{obj + ": kube-proxy runs in nftables mode: nft monitor trace reported nothing of this packet"}
	}
	return nil
}

// tracedAt is what the watch traced in a node (nil without a watch).
func (w *nftWatch) tracedAt(node string) []*NFTTracedPacket {
	if w == nil {
		return nil
	}
	return w.traced[node]
}

// clearStaleNFTTraces deletes the trace tables of labctl processes that
// are gone (a walk killed mid-way). Their monitors end by themselves: the
// pipe they write to has no reader any more.
func clearStaleNFTTraces(h *ns.NS) bool {
	var out []byte
	_ = h.Do(func() error {
		var err error
		out, err = exec.Command("nft", "list", "tables").Output()
		return err
	})
	cleaned := false
	for _, m := range nftTraceTableName.FindAllStringSubmatch(string(out), -1) {
		pid, _ := strconv.Atoi(m[2])
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			continue
		}
		if h.Do(func() error { return exec.Command("nft", "delete", "table", "ip", m[1]).Run() }) == nil {
			cleaned = true
		}
	}
	return cleaned
}
