//go:build linux

package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/lab/ns"
)

// KillInNamespaces ends every process living in the named namespaces.
func KillInNamespaces(names []string) []int { return KillProcesses(names, "") }

// KillProcesses ends processes in the namespaces and, if agentArgs is set,
// the process whose arguments after argv[0] are agentArgs.
func KillProcesses(names []string, agentArgs string) []int {
	inodes := map[string]bool{}
	for _, n := range names {
		if ino, err := ns.Inode(n); err == nil {
			inodes[fmt.Sprintf("net:[%d]", ino)] = true
		}
	}
	var victims []int
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if inodes[link] || (agentArgs != "" && HasArgs(pid, agentArgs)) {
			victims = append(victims, pid)
		}
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// Wait until they are gone so their namespaces can be freed.
	for _, pid := range victims {
		for i := 0; i < 200; i++ {
			if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
				break
			}
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") {
				break // a zombie holds no namespace
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return victims
}

// HasArgs reports whether process pid runs with these arguments after
// argv[0] (NUL-separated), whatever the binary's path.
func HasArgs(pid int, args string) bool {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	parts := strings.SplitN(string(cmdline), "\x00", 2)
	return len(parts) == 2 && strings.TrimRight(parts[1], "\x00") == args
}

// KillOrphans ends the processes named comm that live in namespace nsName
// and whose parent is none of keep: helpers (xtables-monitor) a killed
// labctl left running. It returns how many it ended.
func KillOrphans(nsName, comm string, keep map[int]bool) int {
	n := 0
	for _, pid := range ProcsIn(nsName) {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(c)) != comm || keep[PPID(pid)] {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// ProcsIn are the processes living in the named namespace (none if it
// does not exist).
func ProcsIn(nsName string) []int {
	ino, err := ns.Inode(nsName)
	if err != nil {
		return nil
	}
	want := fmt.Sprintf("net:[%d]", ino)
	var out []int
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); link == want {
			out = append(out, pid)
		}
	}
	return out
}

// PPID is a process's parent, from /proc/<pid>/stat (0 if unknown).
func PPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	var state string
	var parent int
	fmt.Sscanf(s[i+1:], " %s %d", &state, &parent)
	return parent
}
