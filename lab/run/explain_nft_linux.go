//go:build linux

package run

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/kernel"
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
// element, Service or external chain and endpoint chain matched. The trace
// flag is set by a table of labctl's own (labctl-trace-<pid>) on the
// walk's packets only (nftSelect); stop removes it.
type nftWatch struct {
	mons   map[string]*nftMonitor
	client netip.Addr // the source of the traced packets as they reach the nodes
	once   sync.Once
	traced map[string][]*NFTTracedPacket
}

type nftMonitor struct{ traceMonitor }

func nftTraceTable() string { return fmt.Sprintf("labctl-trace-%d", os.Getpid()) }

// nftMarkerPorts are the UDP ports of the monitors' readiness markers.
const nftMarkerBase = 39000

// nftSelect is the nft expression that picks a walk's packets as they
// enter a node: from src to dst, protocol proto.
func nftSelect(src netip.Addr, dst netip.AddrPort, proto string) string {
	return fmt.Sprintf("ip saddr %s ip daddr %s meta l4proto %s th dport %d", src, dst.Addr(), proto, dst.Port())
}

// watchNFT starts a monitor in each node of sel (node -> nftSelect of the
// packets to trace there) and returns once each has reported a marker
// packet sent after it started. client is the packets' source there. It
// first removes what walks that did not finish left in those nodes.
func (s *Session) watchNFT(sel map[string]string, client netip.Addr) (*nftWatch, error) {
	w := &nftWatch{mons: map[string]*nftMonitor{}, client: client}
	for n := range sel {
		h, err := s.NS(n)
		if err != nil {
			return nil, err
		}
		clearStaleNFTTraces(h)
	}
	for n, match := range sel {
		h, _ := s.NS(n)
		// Priority -120: after raw (-300) and mangle (-150), before
		// kube-proxy's first chains (dstnat - 10 = -110). A walk --explain's
		// xtables-monitor, which exits at the first native nftables rule a
		// traced packet crosses, so prints the iptables rules before it.
		table := fmt.Sprintf("table ip %s {\n chain pre { type filter hook prerouting priority -120; %s meta nftrace set 1; }\n"+
			" chain out { type filter hook output priority -120; %s meta nftrace set 1; ip daddr 127.0.0.1 udp dport %d-%d meta nftrace set 1; }\n}\n",
			nftTraceTable(), match, match, nftMarkerBase, nftMarkerBase+999)
		m := &nftMonitor{traceMonitor{h: h}}
		w.mons[n] = m
		// The printer first, then the table: a table another labctl sees
		// always has its printer (staleNFTTraces).
		if err := m.start([]string{nftTraceEnv + "=" + nftTraceTable()}, "nft", "monitor", "trace"); err != nil {
			w.stop()
			return nil, fmt.Errorf("nft monitor trace in %s: %w", h.Name, err)
		}
		err := h.Do(func() error {
			load := exec.Command("nft", "-f", "-")
			load.Stdin = strings.NewReader(table)
			if b, err := load.CombinedOutput(); err != nil {
				return fmt.Errorf("nft -f (the walk's trace table %s) in %s: %w: %s", nftTraceTable(), h.Name, err, b)
			}
			return nil
		})
		if err != nil {
			w.stop()
			return nil, err
		}
	}
	for _, m := range w.mons {
		if err := m.sync(); err != nil {
			w.stop()
			return nil, err
		}
	}
	crash.Point(context.Background(), "walk-nft-traced") // a walk killed with its trace tables and printers running
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

// clearStaleNFTTraces removes, in one namespace, what walks that did not
// finish left (staleNFTTraces): it deletes the trace tables no running
// walk reads and kills their printers if any still run (a labctl that
// predates PR_SET_PDEATHSIG, or one whose printer outlived it). It says
// whether it removed anything.
func clearStaleNFTTraces(h *ns.NS) bool {
	var out []byte
	_ = h.Do(func() error {
		var err error
		out, err = exec.Command("nft", "list", "tables").Output()
		return err
	})
	stale, orphans := staleNFTTraces(string(out), nftTraceProcs(h.Name))
	cleaned := false
	for _, pid := range orphans {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			cleaned = true
		}
	}
	for _, t := range stale {
		if h.Do(func() error { return exec.Command("nft", "delete", "table", "ip", t).Run() }) == nil {
			cleaned = true
		}
	}
	return cleaned
}

// nftTraceProcs are the trace printers labctl started that live in the
// named namespace: processes whose environment holds nftTraceEnv.
func nftTraceProcs(nsName string) []nftTraceProc {
	var out []nftTraceProc
	for _, pid := range kernel.ProcsIn(nsName) {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, kv := range strings.Split(string(env), "\x00") {
			if table, ok := strings.CutPrefix(kv, nftTraceEnv+"="); ok {
				out = append(out, nftTraceProc{PID: pid, PPID: kernel.PPID(pid), Table: table})
				break
			}
		}
	}
	return out
}
