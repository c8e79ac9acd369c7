// Package e2e brings real labs up in network namespaces and proves their
// walks with real packets. It needs root; CI runs it through scripts/test.sh.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/kernel"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "labctl e2e")
}

// labctl is the binary under test, built once per suite run.
var labctl string

var _ = BeforeSuite(func() {
	if os.Geteuid() != 0 {
		Skip("the e2e suites need root: run sudo scripts/test.sh")
	}
	dir, err := os.MkdirTemp("", "labctl-e2e-bin-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	Expect(os.Chmod(dir, 0o755)).To(Succeed()) // the not-root spec runs it as nobody
	labctl = filepath.Join(dir, "labctl")
	out, err := exec.Command("go", "build", "-o", labctl, "../cmd/labctl").CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	// One e2e run per machine: the sweeps below remove every e2e- lab.
	const lockFile = "/run/lock/labctl-e2e.lock"
	Expect(os.MkdirAll(filepath.Dir(lockFile), 0o755)).To(Succeed())
	lock, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	Expect(err).NotTo(HaveOccurred())
	// Another run's labs share this run's names: wait for it to end.
	Expect(unix.Flock(int(lock.Fd()), unix.LOCK_EX)).To(Succeed(), "locking "+lockFile)
	// The file stays: a run waiting on it would otherwise hold a lock on a
	// removed file while a third run locks a new one, and their sweeps
	// would take each other's labs.
	DeferCleanup(lock.Close)
	sweep()
})

// e2eUID is the uid the suite's labctl runs act for (no such user exists).
const e2eUID = "2147000001"

// e2e labs are named with this prefix so a run never touches a user's lab.
const labPrefix = "e2e-"

var _ = AfterSuite(func() {
	if os.Geteuid() != 0 {
		return
	}
	// Whatever a failed spec left, the suite leaves nothing behind.
	sweep()
})

// sweep removes every lab of this suite's prefix, also one whose state was
// lost. It runs before the suite too: a run killed half-way (a timeout, a
// kill -9) would otherwise leave labs whose names make the next run's up fail.
func sweep() {
	labs, _ := lab.Labs()
	for _, l := range labs {
		if strings.HasPrefix(l, labPrefix) {
			if _, err := lab.Down(l); err != nil {
				// A state that does not parse makes down refuse; the suite's
				// own labs may go by their prefix.
				_ = os.Remove(filepath.Join(state.Dir(l), "state.json"))
				_, _ = lab.Down(l)
			}
		}
	}
	// Namespaces of this suite's labs whose state a failed spec lost: down
	// works from the kernel once the lab has a state directory again.
	left, _ := ns.List(spec.NSPrefix + labPrefix)
	for _, n := range left {
		l, _, _ := strings.Cut(strings.TrimPrefix(n, spec.NSPrefix), ".")
		if os.MkdirAll(state.Dir(l), 0o755) == nil {
			_, _ = lab.Down(l)
		}
	}
}

// run executes labctl and returns its combined output and exit code
// (-1 when a signal ended it).
func run(env []string, args ...string) (string, int) {
	out, st := runState(env, args...)
	return out, st.ExitCode()
}

func runState(env []string, args ...string) (string, *os.ProcessState) {
	GinkgoHelper()
	cmd := exec.Command(labctl, args...)
	// labctl keeps a current lab per invoking user (SUDO_UID): the suite's
	// own uid keeps the user's current lab out of its way, and its out of
	// the user's.
	cmd.Env = append(append(os.Environ(), "SUDO_UID="+e2eUID), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		Fail(fmt.Sprintf("running labctl %v: %v", args, err))
	}
	return out.String(), cmd.ProcessState
}

func topology(name string) string { return filepath.Join("..", "topologies", name+".yaml") }

// up builds a lab through the CLI and registers its removal.
func up(topo, name string) { upFile(topology(topo), name) }

// upFile is up for a topology file outside topologies/.
func upFile(file, name string) {
	GinkgoHelper()
	out, code := run(nil, "up", file, "--name", name)
	Expect(code).To(Equal(0), out)
	DeferCleanup(func() {
		if _, err := os.Stat(state.Dir(name)); err == nil {
			out, code := run(nil, "down", name)
			Expect(code).To(Equal(0), out)
		}
		expectNothingLeft(name)
	})
}

// expectNothingLeft proves a lab left no namespace, mount, process or state.
func expectNothingLeft(name string) {
	GinkgoHelper()
	left, err := ns.List(spec.NSPrefix + name + ".")
	Expect(err).NotTo(HaveOccurred())
	Expect(left).To(BeEmpty(), "namespaces left behind")
	Expect(state.Dir(name)).NotTo(BeAnExistingFile(), "state left behind")
	etc, _ := filepath.Glob(filepath.Join(kernel.EtcNetns, spec.NSPrefix+name+".*"))
	Expect(etc).To(BeEmpty(), "resolv.conf files left behind")
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	Expect(err).NotTo(HaveOccurred())
	Expect(string(mounts)).NotTo(ContainSubstring("/run/netns/"+spec.NSPrefix+name+"."), "namespace mounts left behind")
	Expect(agentProcesses(name)).To(BeEmpty(), "app server still running")
}

func agentProcesses(name string) []string {
	want := strings.Join(append([]string{""}, agent.Args(name)...), "\x00")
	var found []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), want+"\x00") {
			found = append(found, e.Name())
		}
	}
	return found
}
