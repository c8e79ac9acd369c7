package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// hostSysctls are every sysctl the lab writes in its namespaces, read here
// in the host's namespace, where the lab must never write them.
var hostSysctls = []string{
	"net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
	"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce", "net/ipv4/conf/all/send_redirects",
	"net/ipv4/conf/default/send_redirects", "net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/proxy_arp",
	"net/ipv4/neigh/default/proxy_delay", "net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/ipv4/fwmark_reflect",
}

// hostState is the root namespace's network state as text: links,
// addresses, routes of every table, rules, permanent and proxy neighbours,
// iptables, the lab's sysctls, and the netns mounts other than the lab's own
// (those are its namespaces; expectNothingLeft proves down removes them).
// hostSysctlKeys are the keys of hostSysctls the host has now. conntrack's
// appear only when its module loads, which any iptables use on the machine
// can cause, so a key the host lacks before a test is left out after too.
func hostSysctlKeys() []string {
	var keys []string
	for _, k := range hostSysctls {
		if _, err := os.Stat("/proc/sys/" + k); !errors.Is(err, os.ErrNotExist) {
			keys = append(keys, k)
		}
	}
	return keys
}

// hostState is the host's network state, with the sysctls keys.
func hostState(lab string, keys []string) string {
	GinkgoHelper()
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-d", "link", "show"}, {"ip", "addr", "show"}, {"ip", "route", "show", "table", "all"},
		{"ip", "rule", "show"}, {"ip", "neigh", "show", "nud", "permanent"}, {"ip", "neigh", "show", "proxy"},
		{"iptables-nft-save"}, {"iptables-legacy-save"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "%v: %s", args, out)
		fmt.Fprintf(&b, "== %s\n", strings.Join(args, " "))
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") { // iptables-save's dated header lines
				b.WriteString(l + "\n")
			}
		}
	}
	for _, k := range keys {
		v, _ := os.ReadFile("/proc/sys/" + k)
		fmt.Fprintf(&b, "%s = %s", k, v)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var netns []string
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, "/run/netns/") && !strings.Contains(l, "/run/netns/"+spec.NSPrefix+lab+".") {
			netns = append(netns, strings.Fields(l)[4])
		}
	}
	sort.Strings(netns)
	fmt.Fprintf(&b, "netns mounts: %v\n", netns)
	return b.String()
}

// expectHostStateSeesTheHost proves a hostState snapshot is not empty: each
// section is there and holds what every Linux host has (lo and 127.0.0.1,
// the local table's routes, the local rule, each sysctl with a value). A
// snapshot that saw nothing would compare equal before and after anything.
func expectHostStateSeesTheHost(s string, keys []string) {
	GinkgoHelper()
	sections := map[string]string{}
	for _, part := range strings.Split(s, "== ")[1:] {
		head, body, _ := strings.Cut(part, "\n")
		sections[head] = body
	}
	for head, want := range map[string]string{
		"ip -d link show": "lo: <LOOPBACK", "ip addr show": "inet 127.0.0.1/8",
		"ip route show table all": "local 127.0.0.1 dev lo table local", "ip rule show": "from all lookup local",
		"ip neigh show nud permanent": "", "ip neigh show proxy": "", "iptables-nft-save": "", "iptables-legacy-save": "",
	} {
		body, ok := sections[head]
		Expect(ok).To(BeTrue(), "host state has no %q section:\n%s", head, s)
		Expect(body).To(ContainSubstring(want), "host state's %q section", head)
	}
	Expect(keys).NotTo(BeEmpty(), "no sysctl of the lab's exists on the host")
	for _, k := range keys {
		Expect(s).To(MatchRegexp(`(?m)^`+regexp.QuoteMeta(k)+` = \S`), "host state lacks sysctl %s", k)
	}
	Expect(s).To(ContainSubstring("netns mounts: "))
}

var _ = Describe("the host", Label("lifecycle", "host"), func() {
	It("has a host state snapshot that sees the host's own objects", func() {
		keys := hostSysctlKeys()
		expectHostStateSeesTheHost(hostState(labPrefix+"snap", keys), keys)
	})

	It("keeps its network namespace unchanged through up, walk and down", func() {
		name := labPrefix + "host"
		keys := hostSysctlKeys()
		before := hostState(name, keys)
		expectHostStateSeesTheHost(before, keys)
		out, code := run(nil, "up", topology("pod-networking"), "--name", name)
		Expect(code).To(Equal(0), out)
		DeferCleanup(func() { _, _ = lab.Down(name) })
		Expect(hostState(name, keys)).To(Equal(before), "up changed the host")
		out, code = run(nil, "walk", "--lab", name, "--captures-dir", GinkgoT().TempDir())
		Expect(code).To(Equal(0), out)
		Expect(hostState(name, keys)).To(Equal(before), "walk changed the host")
		out, code = run(nil, "down", name)
		Expect(code).To(Equal(0), out)
		Expect(hostState(name, keys)).To(Equal(before), "down changed the host")
		expectNothingLeft(name)
	})

	It("links nothing of a lab to the root namespace", func() {
		name := labPrefix + "nolink"
		up("pod-networking", name)
		st, err := lab.ReadState(name)
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Namespaces).NotTo(BeEmpty())
		for _, n := range st.Namespaces {
			h, err := ns.Open(n)
			Expect(err).NotTo(HaveOccurred())
			links, err := h.NL.LinkList()
			Expect(err).NotTo(HaveOccurred())
			// The id this namespace gives the root namespace (ours): the kernel
			// assigns one when a link's peer is there; -1 means none is.
			rootID, err := h.NL.GetNetNsIdByPid(os.Getpid())
			h.Close()
			Expect(err).NotTo(HaveOccurred())
			for _, l := range links {
				if l.Attrs().Name == "lo" {
					continue
				}
				Expect(l.Type()).To(BeElementOf("veth", "bridge"), "%s/%s", n, l.Attrs().Name)
				if rootID >= 0 {
					Expect(l.Attrs().NetNsID).NotTo(Equal(rootID), "%s/%s has its peer in the root namespace", n, l.Attrs().Name)
				}
			}
		}
		out, err := exec.Command("ip", "-o", "link", "show").CombinedOutput()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(out)).NotTo(ContainSubstring("lc."), "a lab link is visible in the root namespace")
		Expect(string(out)).NotTo(MatchRegexp(`eni[0-9a-f]{11}`))
	})
})

var _ = Describe("labctl down after a crash", Label("lifecycle"), func() {
	for _, phase := range lab.FaultPhases {
		It(fmt.Sprintf("removes everything after kill -9 at phase %q of up", phase), func() {
			name := labPrefix + "kill-" + phase
			out, st := runState([]string{"LABCTL_FAULT_AT=" + phase}, "up", topology("pod-networking"), "--name", name)
			ws := st.Sys().(syscall.WaitStatus)
			Expect(ws.Signaled() && ws.Signal() == syscall.SIGKILL).To(BeTrue(), "up was not killed: %s", out)
			Expect(state.Dir(name)).To(BeADirectory(), "state must exist before anything is created")
			if phase != "state" {
				left, _ := ns.List(spec.NSPrefix + name + ".")
				Expect(left).NotTo(BeEmpty(), "the crash should have left namespaces for down to find")
			}
			if phase == "agent" {
				Expect(agentProcesses(name)).NotTo(BeEmpty())
			}
			out, code := run(nil, "down", name)
			Expect(code).To(Equal(0), out)
			expectNothingLeft(name)
		})

		It(fmt.Sprintf("rolls back by itself when interrupted (Ctrl-C) at phase %q of up", phase), func() {
			name := labPrefix + "int-" + phase
			out, code := run([]string{"LABCTL_FAULT_AT=" + phase, "LABCTL_FAULT_SIGNAL=INT"}, "up",
				topology("pod-networking"), "--name", name)
			Expect(code).NotTo(Equal(0), out)
			Expect(out).To(ContainSubstring("context canceled"))
			expectNothingLeft(name)
		})
	}

	It("kills processes left in a lab's namespaces, so no namespace outlives down", func() {
		name := labPrefix + "procs"
		up("pod-networking", name)
		sleeper := exec.Command(labctl, "exec", "--lab", name, "pod51", "--", "sleep", "300")
		Expect(sleeper.Start()).To(Succeed())
		DeferCleanup(func() { _ = sleeper.Process.Kill() })
		Eventually(func() string {
			b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", sleeper.Process.Pid))
			return b
		}).ShouldNot(Equal(mustReadlink("/proc/self/ns/net")))
		out, code := run(nil, "down", name)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("2 processes")) // the app server and the sleep
		_ = sleeper.Wait()
		expectNothingLeft(name)
	})

	It("status reports the app server running, and not running once it died", func() {
		name := labPrefix + "status"
		up("pod-networking", name)
		st, err := lab.ReadState(name)
		Expect(err).NotTo(HaveOccurred())
		out, code := run(nil, "status", "--lab", name)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring(fmt.Sprintf("lab %s: up; iptables nft; kube-proxy iptables; VPC CNI v1.22 (SNAT and mangle in iptables-nft, connmark in iptables-nft); app server running, pid %d", name, st.AgentPID)))
		Expect(syscall.Kill(st.AgentPID, syscall.SIGKILL)).To(Succeed())
		Eventually(func() bool { return agent.Running(name, st.AgentPID) }).Should(BeFalse())
		out, _ = run(nil, "status", "--lab", name)
		Expect(out).To(ContainSubstring(fmt.Sprintf("app server NOT running (was pid %d)", st.AgentPID)))
		Expect(out).To(ContainSubstring("labctl up --resume " + name))
		out, code = run(nil, "walk", "--lab", name, "--captures-dir", GinkgoT().TempDir(), "A2")
		Expect(code).NotTo(Equal(0), "A2 needs pod71's app, which died with the app server: "+out)

		out, code = run(nil, "up", "--resume", name)
		Expect(code).To(Equal(0), out)
		st, err = lab.ReadState(name)
		Expect(err).NotTo(HaveOccurred())
		Expect(agent.Running(name, st.AgentPID)).To(BeTrue(), "the restarted app server")
		out, code = run(nil, "walk", "--lab", name, "--captures-dir", GinkgoT().TempDir(), "A2")
		Expect(code).To(Equal(0), "A2 after up --resume: "+out)
	})

	It("refuses an empty --name rather than taking the topology's name", func() {
		out, code := run(nil, "up", topology("pod-networking"), "--name", "")
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("--name is empty"))
	})

	It("never removes namespaces it did not make", func() {
		foreign := spec.NSPrefix + labPrefix + "foreign.x"
		Expect(exec.Command("ip", "netns", "add", foreign).Run()).To(Succeed())
		DeferCleanup(func() { _ = exec.Command("ip", "netns", "del", foreign).Run() })
		// Only this test's own lab goes down: other labs on the machine stay.
		owner := labPrefix + "owner"
		up("pod-networking", owner)
		// One under the lab's own prefix, made after up by someone else.
		intruder := spec.NSName(owner, "x")
		Expect(exec.Command("ip", "netns", "add", intruder).Run()).To(Succeed())
		DeferCleanup(func() { _ = exec.Command("ip", "netns", "del", intruder).Run() })
		out, code := run(nil, "down", owner)
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("not removed"))
		Expect(ns.Path(foreign)).To(BeAnExistingFile())
		Expect(ns.Path(intruder)).To(BeAnExistingFile(), "down removed a namespace under its prefix that it did not make")
		Expect(exec.Command("ip", "netns", "del", intruder).Run()).To(Succeed())
		out, code = run(nil, "up", topology("pod-networking"), "--name", labPrefix+"foreign")
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("were not made by this labctl"))
	})

	It("refuses a lab name that is a path, so down cannot remove a directory outside its own", func() {
		// A canary beside the state root: "../<canary>" would name it.
		canary := filepath.Join(filepath.Dir(state.Root), labPrefix+"canary")
		Expect(os.MkdirAll(canary, 0o755)).To(Succeed())
		DeferCleanup(os.RemoveAll, canary)
		for _, args := range [][]string{{"down", "../" + filepath.Base(canary)}, {"status", "--lab", "../" + filepath.Base(canary)}} {
			out, code := run(nil, args...)
			Expect(code).NotTo(Equal(0), out)
			Expect(out).To(ContainSubstring("lab name"))
			Expect(canary).To(BeADirectory(), "labctl %v removed a directory it did not make", args)
		}
	})
})

func mustReadlink(p string) string {
	s, err := os.Readlink(p)
	Expect(err).NotTo(HaveOccurred())
	return s
}

var _ = Describe("bad input", Label("lifecycle", "bad-input"), func() {
	// nothingCreated proves a failed up created no namespace and no state.
	nothingCreated := func(name string) {
		GinkgoHelper()
		left, _ := ns.List(spec.NSPrefix + name + ".")
		Expect(left).To(BeEmpty())
		Expect(state.Dir(name)).NotTo(BeADirectory())
	}

	It("rejects a topology with an error, naming the file, line and object, before creating anything", func() {
		src, err := os.ReadFile(topology("pod-networking"))
		Expect(err).NotTo(HaveOccurred())
		bad := strings.Replace(string(src), "ip: 192.168.1.81,", "ip: 192.168.9.81,", 1)
		f := filepath.Join(GinkgoT().TempDir(), "bad.yaml")
		Expect(os.WriteFile(f, []byte(bad), 0o644)).To(Succeed())
		out, code := run(nil, "up", f, "--name", labPrefix+"bad")
		Expect(code).NotTo(Equal(0))
		Expect(out).To(MatchRegexp(`bad\.yaml:\d+: pods\[3\]\.ip: 192\.168\.9\.81 is outside subnet "a"`))
		nothingCreated(labPrefix + "bad")
	})

	It("refuses to run without root, saying so", func() {
		cmd := exec.Command(labctl, "up", topology("pod-networking"), "--name", labPrefix+"nonroot")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred())
		Expect(string(out)).To(ContainSubstring("must run as root"))
		nothingCreated(labPrefix + "nonroot")
	})

	It("names the missing tools", func() {
		dir := GinkgoT().TempDir()
		Expect(os.Symlink("/usr/sbin/ip", filepath.Join(dir, "ip"))).To(Succeed())
		out, code := run([]string{"PATH=" + dir}, "up", topology("pod-networking"), "--name", labPrefix+"notools")
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("missing tools: iptables, tcpdump, iptables-nft-restore, iptables-nft-save"))
		nothingCreated(labPrefix + "notools")
	})

	It("refuses a lab name that is already up", func() {
		name := labPrefix + "twice"
		up("pod-networking", name)
		out, code := run(nil, "up", topology("pod-networking"), "--name", name)
		Expect(code).NotTo(Equal(0))
		Expect(out).To(ContainSubstring("is already up"))
	})
})
