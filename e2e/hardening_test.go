package e2e

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

var _ = Describe("labctl as root on a shared machine", Ordered, Label("lifecycle", "hardening"), func() {
	It("never writes a capture through a link another user planted in its captures directory", func() {
		name := labPrefix + "symlink"
		up("pod-networking", name)
		// A directory an unprivileged user owns, as a trainee's checkout is.
		dir := GinkgoT().TempDir()
		Expect(os.Chmod(dir, 0o777)).To(Succeed())
		caps := filepath.Join(dir, "captures")
		Expect(os.Mkdir(caps, 0o755)).To(Succeed())
		Expect(os.Chown(caps, 65534, 65534)).To(Succeed())
		// The file the attacker wants root to overwrite.
		victim := filepath.Join(GinkgoT().TempDir(), "root-only")
		Expect(os.WriteFile(victim, []byte("precious\n"), 0o600)).To(Succeed())
		// The user's links, for every name the next 40 s could give: lab,
		// walk and a millisecond timestamp are all predictable. (Made here
		// and handed to the user, which is what the user could do alone.)
		start := time.Now().UTC()
		for i := 0; i < 40*1000; i++ {
			ts := start.Add(time.Duration(i) * time.Millisecond).Format("20060102T150405.000")
			for _, ext := range []string{".pcapng", ".html"} {
				l := filepath.Join(caps, name+"-A1-"+ts+ext)
				Expect(os.Symlink(victim, l)).To(Succeed())
				Expect(os.Lchown(l, 65534, 65534)).To(Succeed())
			}
		}
		out, code := run(nil, "walk", "--lab", name, "--captures-dir", caps, "A1")
		Expect(code).NotTo(Equal(0), "the walk wrote its capture although its name was planted:\n"+out)
		Expect(out).To(ContainSubstring("never writes through an existing name"))
		b, err := os.ReadFile(victim)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(b)).To(Equal("precious\n"), "root wrote through the planted link")
	})

	It("puts its captures in a directory the user owns, owned by that user, and refuses a path through another user's link", func() {
		name := labPrefix + "capown"
		up("pod-networking", name)
		dir := GinkgoT().TempDir()
		Expect(os.Chown(dir, 65534, 65534)).To(Succeed())
		out, code := run(nil, "walk", "--lab", name, "--captures-dir", dir, "A1")
		Expect(code).To(Equal(0), out)
		files, _ := filepath.Glob(filepath.Join(dir, "*.pcapng"))
		Expect(files).To(HaveLen(1))
		var st syscall.Stat_t
		Expect(syscall.Stat(files[0], &st)).To(Succeed())
		Expect(st.Uid).To(Equal(uint32(65534)), "the capture belongs to the directory's owner, who asked for it")

		link := filepath.Join(GinkgoT().TempDir(), "caps")
		Expect(os.Symlink(GinkgoT().TempDir(), link)).To(Succeed())
		Expect(os.Lchown(link, 65534, 65534)).To(Succeed())
		out, code = run(nil, "walk", "--lab", name, "--captures-dir", link, "A1")
		Expect(code).NotTo(Equal(0), out)
		Expect(out).To(ContainSubstring("symbolic link owned by uid 65534"))
	})

	It("keeps a lab's state directory and control socket for root alone, whatever the umask", func() {
		name := labPrefix + "umask"
		cmd := exec.Command(labctl, "up", topology("pod-networking"), "--name", name)
		old := syscall.Umask(0)
		out, err := cmd.CombinedOutput()
		syscall.Umask(old)
		Expect(err).NotTo(HaveOccurred(), string(out))
		DeferCleanup(func() { run(nil, "down", name); expectNothingLeft(name) })
		for _, p := range []string{state.Dir(name), state.AgentSocket(name), filepath.Join(state.Dir(name), "state.json")} {
			fi, err := os.Stat(p)
			Expect(err).NotTo(HaveOccurred())
			Expect(fi.Mode().Perm()&0o077).To(BeZero(), "%s is %v", p, fi.Mode())
		}
	})

	// up and down of one lab at random moments: down waits for up's lock,
	// so whatever the timing nothing is left and every down succeeds or
	// says why (LABCTL_RACE_RUNS sets the count; 50 is the recorded soak).
	It("leaves nothing after up and down race at random delays", func() {
		runs := 10
		if n, err := strconv.Atoi(os.Getenv("LABCTL_RACE_RUNS")); err == nil && n > 0 {
			runs = n
		}
		seed := GinkgoRandomSeed()
		r := rand.New(rand.NewSource(seed))
		name := labPrefix + "race"
		for i := 0; i < runs; i++ {
			delay := time.Duration(r.Intn(400)) * time.Millisecond
			upCmd := exec.Command(labctl, "up", topology("internet-to-pod"), "--name", name)
			Expect(upCmd.Start()).To(Succeed())
			time.Sleep(delay)
			out, code := run(nil, "down", name)
			_ = upCmd.Wait()
			if code != 0 {
				// down came before up made anything: it must say so, and
				// the lab, if up finished since, must go now.
				Expect(out).To(ContainSubstring("is not up"), "run %d (seed %d, delay %v): %s", i, seed, delay, out)
				if _, err := os.Stat(state.Dir(name)); err == nil {
					out, code = run(nil, "down", name)
					Expect(code).To(Equal(0), out)
				}
			}
			left, err := ns.List(spec.NSPrefix + name + ".")
			Expect(err).NotTo(HaveOccurred())
			Expect(left).To(BeEmpty(), "run %d (seed %d, delay %v) left namespaces", i, seed, delay)
			expectNothingLeft(name)
		}
	})
})
