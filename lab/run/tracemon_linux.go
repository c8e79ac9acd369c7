package run

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labctl/labctl/lab/ns"
)

// traceMonitor runs a kernel trace printer in one namespace
// (xtables-monitor --trace for iptables' TRACE target, nft monitor trace
// for nftables' nftrace) and keeps what it prints, so a walk reads its own
// packets' rule paths afterwards. Both tracers share it; they differ in the
// command, the marker's port and how a marker line reads.
type traceMonitor struct {
	h      *ns.NS
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	marker int
}

// start runs the printer. Call it inside m.h.Do so it lives in the
// namespace; the goroutine that reads its output needs no namespace.
func (m *traceMonitor) start(name string, args ...string) error {
	m.cmd = exec.Command(name, args...)
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	out := bufio.NewScanner(stdout)
	out.Buffer(make([]byte, 64<<10), 1<<20)
	if err := m.cmd.Start(); err != nil {
		return err
	}
	go func() {
		for out.Scan() {
			m.mu.Lock()
			m.lines = append(m.lines, out.Text())
			m.mu.Unlock()
		}
	}()
	return nil
}

// awaitMarker sends a UDP packet to 127.0.0.1:port in the namespace until
// a printed line holds want (for 5 s): every event before the marker has
// then been read.
func (m *traceMonitor) awaitMarker(port int, want, payload string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_ = m.h.Do(func() error {
			c, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(payload))
			return err
		})
		for i := 0; i < 10; i++ {
			if m.holds(want) {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return false
}

func (m *traceMonitor) holds(want string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.lines {
		if strings.Contains(l+" ", want) {
			return true
		}
	}
	return false
}

// running says whether the printer was started.
func (m *traceMonitor) running() bool { return m.cmd != nil && m.cmd.Process != nil }

// end kills the printer and returns what it printed.
func (m *traceMonitor) end() []string {
	if m.running() {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lines
}
