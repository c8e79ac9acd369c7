package run

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/labctl/labctl/lab/ns"
)

// traceMonitor runs a kernel trace printer in one namespace
// (xtables-monitor --trace for iptables' TRACE target, nft monitor trace
// for nftables' nftrace) and keeps what it prints, so a walk reads its own
// packets' rule paths afterwards. Both tracers share it; they differ in the
// command, the marker's port and how a marker line reads.
//
// The printer dies with labctl: it is started with PR_SET_PDEATHSIG
// SIGKILL from an OS thread that lives as long as the printer does, so a
// labctl killed mid-walk (kill -9) leaves no printer holding the lab's
// namespace (a deleted namespace lives on while a process is in it).
type traceMonitor struct {
	h *ns.NS
	// respawn restarts the printer whenever it exits before end. Debian's
	// xtables-monitor (iptables 1.8.9) exits ("Parsing nftables rule
	// failed") at the first traced packet that crosses a native nftables
	// rule it cannot print as iptables, such as kube-proxy's in nftables
	// mode: an NLB health check to a NodePort would end it before the
	// walk sends anything. Restarted, it goes on with the next packet.
	respawn bool
	exited  chan struct{} // closed once the last printer has exited and been reaped
	read    chan struct{} // closed once the output has been read to the end
	mu      sync.Mutex
	cmd     *exec.Cmd // the printer running now
	ending  bool
	lines   []string
	marker  int
}

// maxRespawns bounds the restarts of one walk's printer: a printer that
// cannot run at all must not be restarted forever.
const maxRespawns = 256

// start runs the printer in m.h's namespace with env added to labctl's
// environment. The reading goroutine needs no namespace.
func (m *traceMonitor) start(env []string, name string, args ...string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	command := func() *exec.Cmd {
		c := exec.Command(name, args...)
		c.Env = append(os.Environ(), env...)
		c.Stdout = w
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return c
	}
	m.exited = make(chan struct{})
	started := make(chan error, 1)
	// The printer's thread: Linux sends the parent-death signal when the
	// thread that forked the child ends (prctl(2), PR_SET_PDEATHSIG), not
	// only the process, so the thread stays in fn until the last printer
	// has exited.
	err = m.h.Go(func() {
		defer w.Close() // EOF for the reader once no printer can write
		c := command()
		if err := c.Start(); err != nil {
			started <- err
			return
		}
		m.mu.Lock()
		m.cmd = c
		m.mu.Unlock()
		started <- nil
		defer close(m.exited)
		for n := 0; ; n++ {
			_ = c.Wait()
			_, _ = w.Write([]byte("\n")) // ends a line the printer left half-written
			m.mu.Lock()
			if m.ending || !m.respawn || n >= maxRespawns {
				m.mu.Unlock()
				return
			}
			c = command()
			if c.Start() != nil {
				m.mu.Unlock()
				return
			}
			m.cmd = c
			m.mu.Unlock()
		}
	})
	if err != nil {
		w.Close()
		r.Close()
		return err
	}
	if err := <-started; err != nil {
		r.Close()
		return err
	}
	m.read = make(chan struct{})
	go func() {
		defer close(m.read)
		defer r.Close()
		out := bufio.NewScanner(r)
		out.Buffer(make([]byte, 64<<10), 1<<20)
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
func (m *traceMonitor) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

// end kills the printer and returns everything it printed.
func (m *traceMonitor) end() []string {
	if m.running() {
		m.mu.Lock()
		m.ending = true
		_ = m.cmd.Process.Kill()
		m.mu.Unlock()
		<-m.exited
		<-m.read
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lines
}
