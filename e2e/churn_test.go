package e2e

import (
	"os/exec"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/kubeproxy"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
)

// webPods are the lab's running, ready pods of Deployment default/web, as
// it is now (a pending delete's two pods are left out until they are).
func webPods(name string) []spec.Pod {
	GinkgoHelper()
	t, _, err := lab.Load(name)
	Expect(err).NotTo(HaveOccurred())
	var out []spec.Pod
	for _, p := range t.Pods {
		if p.Manifest == "Deployment default/web" && p.Phase == "" {
			out = append(out, p)
		}
	}
	return out
}

// expectDeleted checks that pod is gone for good and its replacement
// took its place: in the state, in the kernel and in every node's rules.
func expectDeleted(name string, gone spec.Pod) {
	GinkgoHelper()
	st, err := lab.ReadState(name)
	Expect(err).NotTo(HaveOccurred())
	Expect(st.Churn.Pending).To(BeNil(), "a delete is still pending")
	Expect(ns.Path(spec.NSName(name, gone.Name))).NotTo(BeAnExistingFile(), "the deleted pod's namespace")
	Expect(st.Namespaces).NotTo(ContainElement(spec.NSName(name, gone.Name)))
	Expect(webPods(name)).To(HaveLen(3))
	for _, p := range webPods(name) {
		Expect(p.Name).NotTo(Equal(gone.Name))
		Expect(ns.Path(spec.NSName(name, p.Name))).To(BeAnExistingFile(), p.Name)
	}
	// What the VPC CNI's DEL removes on the pod's node.
	node := spec.NSName(name, gone.Node)
	Expect(exec.Command("ip", "-n", node, "link", "show", spec.HostVethName(gone.Namespace, gone.Name)).Run()).NotTo(Succeed(),
		"the deleted pod's host veth is still on "+gone.Node)
	rules, err := exec.Command("ip", "-n", node, "rule").CombinedOutput()
	Expect(err).NotTo(HaveOccurred())
	Expect(string(rules)).NotTo(ContainSubstring(gone.IP.String()+" "), "rules 512/1536 of the deleted pod")
	proxies, err := exec.Command("ip", "-n", node, "neigh", "show", "proxy").CombinedOutput()
	Expect(err).NotTo(HaveOccurred())
	Expect(string(proxies)).NotTo(ContainSubstring(gone.IP.String()+" "), "the deleted pod's proxy ARP entry")
	oldSEP := string(kubeproxy.ServicePortEndpointChainName("default/web:http", "tcp", gone.IP.String()+":80"))
	for _, n := range []string{"node51", "node71", "node81"} {
		save, err := exec.Command("ip", "netns", "exec", spec.NSName(name, n), "iptables-save", "-t", "nat").CombinedOutput()
		Expect(err).NotTo(HaveOccurred())
		Expect(string(save)).NotTo(ContainSubstring("--to-destination "+gone.IP.String()+":"), n)
		Expect(string(save)).NotTo(ContainSubstring(oldSEP), n+" keeps the deleted pod's KUBE-SEP chain")
		for _, p := range webPods(name) {
			Expect(string(save)).To(ContainSubstring("--to-destination "+p.IP.String()+":80"), n+" has no DNAT to "+p.Name)
		}
	}
}

var _ = Describe("pod delete after a crash", Ordered, Label("services", "lifecycle"), func() {
	const name = labPrefix + "churn"
	BeforeAll(func() { up("clusterip", name) })

	// Every step of spec.DeleteSteps, and inside them: synced-node51,
	// killed after the first node's rules moved on (the old endpoint
	// terminating) before the others'; start-veth and start-pod, killed
	// inside the replacement's CNI ADD, with its veth made but unaddressed,
	// then with the pod side made but not the node's routes and rules.
	for _, step := range []string{"synced-node51", "terminating", "start-veth", "start-pod", "started", "listening", "ready", "registered", "removed", "done"} {
		It("resumes a delete killed -9 at step "+step+", and the VIP reaches the replacement", func() {
			gone := webPods(name)[0]
			out, code := run([]string{"LABCTL_FAULT_AT=pod-" + step}, "pod", "delete", "--lab", name, gone.Name)
			Expect(code).NotTo(Equal(0), out)
			st, err := lab.ReadState(name)
			Expect(err).NotTo(HaveOccurred())
			Expect(st.Churn.Pending).NotTo(BeNil(), "the killed delete left no record")
			Expect(st.Churn.Pending.Deleted.Name).To(Equal(gone.Name))
			// status and pod list say the delete is pending and how to finish it.
			status, code := run(nil, "status", "--lab", name)
			Expect(code).To(Equal(0), status)
			Expect(status).To(ContainSubstring("pod delete pending: " + gone.Name))
			Expect(status).To(ContainSubstring("pod delete --lab " + name + " " + gone.Name + " finishes it"))
			list, code := run(nil, "pod", "list", "--lab", name)
			Expect(code).To(Equal(0), list)
			Expect(list).To(MatchRegexp(st.Churn.Pending.Started.Name + `\s.*being started`))
			if step != "done" {
				Expect(list).To(MatchRegexp(gone.Name + `\s.*being deleted`))
			}
			if strings.HasPrefix(step, "start-") {
				// The replacement is half made, as the fault point says.
				repl := st.Churn.Pending.Started
				node := spec.NSName(name, repl.Node)
				Expect(exec.Command("ip", "-n", node, "link", "show", spec.HostVethName(repl.Namespace, repl.Name)).Run()).To(Succeed(),
					"the replacement's host veth should exist")
				addrs, err := exec.Command("ip", "-n", spec.NSName(name, repl.Name), "-4", "addr", "show", "dev", "eth0").CombinedOutput()
				Expect(err).NotTo(HaveOccurred(), string(addrs))
				rules, err := exec.Command("ip", "-n", node, "rule").CombinedOutput()
				Expect(err).NotTo(HaveOccurred())
				Expect(string(rules)).NotTo(ContainSubstring(repl.IP.String()+" "), "the node's rules are made last")
				if step == "start-veth" {
					Expect(string(addrs)).NotTo(ContainSubstring("inet "), "the veth is not addressed yet")
				} else {
					Expect(string(addrs)).To(ContainSubstring("inet "+repl.IP.String()+"/32"), "the pod side is made")
				}
			}

			var other spec.Pod
			for _, p := range webPods(name) {
				if p.Name != gone.Name && p.Name != st.Churn.Pending.Started.Name {
					other = p
				}
			}
			Expect(other.Name).NotTo(BeEmpty())
			out, code = run(nil, "pod", "delete", "--lab", name, other.Name)
			Expect(code).NotTo(Equal(0), "a second delete ran while one was half done:\n"+out)
			Expect(out).To(ContainSubstring("the delete of pod " + gone.Name + " stopped half-way"))

			out, code = run(nil, "pod", "delete", "--lab", name, gone.Name)
			Expect(code).To(Equal(0), out)
			Expect(out).To(ContainSubstring("finished the delete of pod " + gone.Name))
			expectDeleted(name, gone)
			out, code = run(nil, "walk", "--lab", name, "B1-spread")
			Expect(code).To(Equal(0), out)
		})
	}

	It("stops a delete interrupted with Ctrl-C, says how to resume, and resumes it", func() {
		gone := webPods(name)[0]
		out, code := run([]string{"LABCTL_FAULT_AT=pod-started", "LABCTL_FAULT_SIGNAL=INT"}, "pod", "delete", "--lab", name, gone.Name)
		Expect(code).NotTo(Equal(0), out)
		Expect(out).To(ContainSubstring(`stopped after step "started"`))
		Expect(out).To(ContainSubstring("labctl pod delete " + gone.Name + "` again to resume"))
		out, code = run(nil, "pod", "delete", "--lab", name, gone.Name)
		Expect(code).To(Equal(0), out)
		// The ready and removed steps are left: two partial syncs on each of the three nodes.
		Expect(strings.Count(out, "partial sync")).To(Equal(6), "every node's rules should follow on resume:\n"+out)
		expectDeleted(name, gone)
	})
})
