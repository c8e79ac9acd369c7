package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// cliUID is the user these specs act for: their current lab is theirs
// alone, whatever other specs running in parallel pick.
const cliUID = "2147000002"

// runIn is run with a working directory and extra environment.
func runIn(dir string, env []string, args ...string) (string, int) {
	GinkgoHelper()
	cmd := exec.Command(labctl, args...)
	cmd.Dir = dir
	cmd.Env = append(append(cmd.Environ(), "SUDO_UID="+cliUID), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		Fail("running labctl: " + err.Error())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

var _ = Describe("the CLI", Label("cli"), func() {
	// up makes its lab current: forget it, so no file of these specs stays.
	AfterEach(func() { runIn("/", nil, "use", "--none") })

	It("lists every built-in topology with its walks from any directory", func() {
		out, code := runIn("/", nil, "list", "--topologies", "-o", "json")
		Expect(code).To(Equal(0), out)
		var doc struct {
			APIVersion, Kind string
			Items            []struct {
				Name  string
				Walks []string
			}
		}
		Expect(json.Unmarshal([]byte(out), &doc)).To(Succeed(), out)
		Expect(doc.APIVersion).To(Equal("labctl/v1"))
		Expect(doc.Kind).To(Equal("TopologyList"))
		files, _ := filepath.Glob(filepath.Join("..", "topologies", "*.yaml"))
		Expect(doc.Items).To(HaveLen(len(files)))
		for _, it := range doc.Items {
			Expect(it.Walks).NotTo(BeEmpty(), it.Name)
		}
	})

	It("acts on the current lab without --lab, with a second lab up, and names the labs that are up", func() {
		a, b := labPrefix+"cli-a", labPrefix+"cli-b"
		dir := GinkgoT().TempDir()
		// Bare names: the built-in topologies, whatever the working directory.
		for _, l := range []string{a, b} {
			out, code := runIn(dir, nil, "up", "pod-networking", "--name", l)
			Expect(code).To(Equal(0), out)
			DeferCleanup(func() {
				out, code := run(nil, "down", l)
				Expect(code).To(Equal(0), out)
				expectNothingLeft(l)
			})
		}
		Expect(runIn(dir, nil, "use")).To(HavePrefix(b)) // up made b current

		out, code := runIn(dir, nil, "walk", "A1", "-o", "json", "--captures-dir", dir)
		Expect(code).To(Equal(0), out)
		var walks struct {
			APIVersion, Kind, Lab string
			Passed, Failed        int
			Items                 []struct {
				Kind, Name, Verdict, Capture string
				Hops                         []struct {
					Index          int
					Point, Verdict string
				}
			}
		}
		Expect(json.Unmarshal([]byte(out), &walks)).To(Succeed(), out)
		Expect(walks.Kind).To(Equal("WalkResultList"))
		Expect(walks.Lab).To(Equal(b))
		Expect(walks.Passed).To(Equal(1))
		Expect(walks.Items).To(HaveLen(1))
		Expect(walks.Items[0].Verdict).To(Equal("PASS"))
		Expect(walks.Items[0].Capture).To(BeAnExistingFile())
		Expect(walks.Items[0].Hops).NotTo(BeEmpty())
		Expect(walks.Items[0].Hops[0].Index).To(Equal(1))

		out, code = runIn(dir, nil, "use", a)
		Expect(code).To(Equal(0), out)
		var st struct{ Kind, Lab string }
		out, code = runIn(dir, nil, "status", "-o", "json")
		Expect(code).To(Equal(0), out)
		Expect(json.Unmarshal([]byte(out), &st)).To(Succeed(), out)
		Expect(st.Lab).To(Equal(a))
		out, _ = runIn(dir, []string{"LABCTL_LAB=" + b}, "status", "-o", "json")
		Expect(json.Unmarshal([]byte(out), &st)).To(Succeed(), out)
		Expect(st.Lab).To(Equal(b), "LABCTL_LAB comes before the current lab")

		var list struct {
			Current string
			Items   []struct{ Name string }
		}
		out, code = runIn(dir, nil, "list", "-o", "json")
		Expect(code).To(Equal(0), out)
		Expect(json.Unmarshal([]byte(out), &list)).To(Succeed(), out)
		Expect(list.Current).To(Equal(a))

		for _, args := range [][]string{{"walk", "--lab", labPrefix + "nope", "A1"}, {"exec", "--lab", labPrefix + "nope", "node51", "--", "true"}} {
			out, code = runIn(dir, nil, args...)
			Expect(code).NotTo(Equal(0))
			Expect(out).To(ContainSubstring("is not up"))
			Expect(out).To(ContainSubstring(a))
			Expect(out).To(ContainSubstring(b))
		}
		out, code = runIn(dir, nil, "exec", "node51", "--", "ip", "-br", "addr")
		Expect(code).To(Equal(0), out)
		Expect(out).To(ContainSubstring("192.168.1.50"))
	})

	It("resolves a public name from an internet host through the lab's Route 53", func() {
		name := labPrefix + "cli-inet"
		out, code := runIn(GinkgoT().TempDir(), nil, "up", "internet-to-pod", "--name", name)
		Expect(code).To(Equal(0), out)
		DeferCleanup(func() {
			out, code := run(nil, "down", name)
			Expect(code).To(Equal(0), out)
			expectNothingLeft(name)
		})
		Eventually(func() string {
			out, _ := run(nil, "exec", "--lab", name, "webclient", "--", "curl", "-sS", "-m", "5", "http://portal.example.com/order")
			return out
		}, "30s", "1s").Should(ContainSubstring(`"object":"order-`))
	})
})
