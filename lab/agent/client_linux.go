//go:build linux

package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/state"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// Reload asks the app server to reload the lab's pods and waits until
// it serves exactly them.
func Reload(lab string) error {
	c, err := net.DialTimeout("unix", state.AgentSocket(lab), traffic.Timeout)
	if err != nil {
		return fmt.Errorf("reaching the app server: %w", err)
	}
	defer c.Close()
	// Longer than a reload can take: the health checks settle within
	// settleLimit, after the old ones stopped and the listeners changed.
	_ = c.SetDeadline(time.Now().Add(settleLimit + 20*time.Second))
	if _, err := fmt.Fprintln(c, "reload"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("app server reload: %w", err)
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("app server reload: %s", strings.TrimSpace(line))
	}
	return nil
}

// Start runs `labctl agent --lab NAME` detached and waits until it says
// every listener is open (a line on fd 3), so walks never race the apps.
func Start(ctx context.Context, lab string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(state.AgentLog(lab), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if Command != "" {
		self = Command
	}
	cmd := exec.Command(self, Args(lab)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), EnvVar+"=1")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("starting the app server: %w", err)
	}
	w.Close()
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if strings.TrimSpace(line) == "ready" {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("the app server exited before it was ready (%v); see %s", err, state.AgentLog(lab))
	}()
	select {
	case err := <-ready:
		return pid, err
	case <-ctx.Done():
		return pid, ctx.Err()
	}
}

// Command is the binary that runs the app server; empty means this
// executable, which serves it if it imports package lab (its init does).
var Command string

// EnvVar, set to 1, tells a program started with Args that it is a lab's
// app server (package lab's init serves it).
const EnvVar = "LABCTL_AGENT"

// Args is the command line of a lab's app server; Down recognises the
// process by it.
func Args(lab string) []string { return []string{"agent", "--lab", lab} }

// Running reports whether the lab's app server, recorded in its state
// as pid, is still running. Walks need it: it plays the pods' apps, DNS,
// kube-proxy's health servers and the ALB.
func Running(lab string, pid int) bool {
	return pid > 0 && kernel.HasArgs(pid, strings.Join(Args(lab), "\x00"))
}

// ALBConn asks the lab's app server which connection its ALB used for
// the walk request with token, and how long it had been idle when it was a
// kept-alive one (-1 for a new connection).
func ALBConn(lab, token string) (*walk.Conn, time.Duration, error) {
	c, err := net.DialTimeout("unix", state.AgentSocket(lab), traffic.Timeout)
	if err != nil {
		return nil, -1, fmt.Errorf("reaching the app server: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(traffic.Timeout))
	if _, err := fmt.Fprintln(c, "albconn", token); err != nil {
		return nil, -1, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return nil, -1, err
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return nil, -1, nil // the request reached no target
	}
	src, err1 := netip.ParseAddrPort(f[0])
	dst, err2 := netip.ParseAddrPort(f[1])
	idle := time.Duration(-1)
	if f[2] == "kept" && len(f) == 4 {
		ms, err3 := strconv.Atoi(f[3])
		err2, idle = errors.Join(err2, err3), time.Duration(ms)*time.Millisecond
	}
	if err := errors.Join(err1, err2); err != nil {
		return nil, -1, fmt.Errorf("app server's answer %q: %w", strings.TrimSpace(line), err)
	}
	return &walk.Conn{Src: src, Dst: dst}, idle, nil
}

// SetKeepAlive sets the keep-alive timeout of an app (a pod's HTTP server)
// in the lab's app server: a request on a connection idle that long finds
// it closed. 0 removes it. It lasts until the app server restarts.
func SetKeepAlive(lab, object string, d time.Duration) error {
	c, err := net.DialTimeout("unix", state.AgentSocket(lab), traffic.Timeout)
	if err != nil {
		return fmt.Errorf("reaching the app server: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(traffic.Timeout))
	if _, err := fmt.Fprintf(c, "keepalive %s %d\n", object, d.Milliseconds()); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("app server keepalive: %w", err)
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("app server keepalive %s: %s", object, strings.TrimSpace(line))
	}
	return nil
}

// KeepAliveOf is the keep-alive timeout of an app (SetKeepAlive), 0 when
// it keeps connections as long as the client likes.
func KeepAliveOf(lab, object string) (time.Duration, error) {
	c, err := net.DialTimeout("unix", state.AgentSocket(lab), traffic.Timeout)
	if err != nil {
		return 0, fmt.Errorf("reaching the app server: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(traffic.Timeout))
	if _, err := fmt.Fprintf(c, "keepalive-of %s\n", object); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("app server keepalive-of %s: %w", object, err)
	}
	ms, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || ms < 0 {
		return 0, fmt.Errorf("app server keepalive-of %s: answered %q", object, strings.TrimSpace(line))
	}
	return time.Duration(ms) * time.Millisecond, nil
}
