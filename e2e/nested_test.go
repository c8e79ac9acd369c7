package e2e

import (
	"os/exec"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// A privileged container gives labctl fresh network, mount and PID
// namespaces and a /run of its own. The same here, with unshare: a lab is
// built, walked and removed there, which proves it needs nothing from the
// host's network namespace, its /run or its processes.
var _ = Describe("inside fresh Linux namespaces, as in a privileged container", Label("lifecycle", "nested"), func() {
	It("builds, walks and removes a lab with its own network, mount and PID namespaces and /run", func() {
		if _, err := exec.LookPath("unshare"); err != nil {
			Skip("unshare (util-linux) is not installed")
		}
		caps := GinkgoT().TempDir()
		script := strings.Join([]string{
			"set -e",
			"mount -t tmpfs tmpfs /run",
			"ip link set lo up",
			labctl + " up pod-networking --name nested",
			labctl + " walk --lab nested --captures-dir " + caps,
			labctl + " down nested",
			"test -z \"$(ip netns list)\"",
			"echo nested-ok",
		}, "\n")
		out, err := exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("passed, 0 failed"))
		Expect(string(out)).To(ContainSubstring("nested-ok"))
		// Nothing of it reached the host's /run.
		Expect(strings.Contains(mustRun("ip", "netns", "list"), "lc.nested.")).To(BeFalse())
	})
})

func mustRun(name string, args ...string) string {
	GinkgoHelper()
	out, err := exec.Command(name, args...).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return string(out)
}
