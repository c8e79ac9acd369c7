package main

import (
	"os/exec"
	"syscall"
)

// setGroup puts the test in its own process group and kills the whole
// group when its time runs out (go test's child binaries included).
func setGroup(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
}
