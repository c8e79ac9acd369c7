package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// A crash point of a command that changes a lab: LABCTL_FAULT_AT=point
// kills labctl there with SIGKILL, as a kill -9 would.
type chaosCase struct {
	topology string
	args     []string // the command, with LAB for the lab's name
	point    string
}

var chaosCases = func() []chaosCase {
	var cs []chaosCase
	for _, p := range []string{"state", "namespaces", "veths", "configured", "agent"} {
		cs = append(cs, chaosCase{"internet-to-pod", []string{"up", "internet-to-pod", "--name", "LAB"}, p})
	}
	for _, p := range []string{"pod-synced-node51", "pod-terminating", "pod-start-veth", "pod-start-pod", "pod-started",
		"pod-listening", "pod-ready", "pod-registered", "pod-removed", "pod-done"} {
		cs = append(cs, chaosCase{"clusterip", []string{"pod", "delete", "--lab", "LAB", "WEBPOD"}, p})
	}
	cs = append(cs, chaosCase{"pod-networking", []string{"fault", "inject", "--lab", "LAB", "missing-1536"}, "fault-recorded"})
	cs = append(cs, chaosCase{"pod-networking", []string{"walk", "--lab", "LAB", "-x", "--captures-dir", "CAPS", "A3"}, "walk-traced"})
	return cs
}()

// Every command that changes a lab, killed -9 at a point picked at random
// (seeded: the seed is printed, and LABCTL_CHAOS_SEED replays it), then
// labctl down: nothing of the lab may be left (LABCTL_CHAOS_RUNS sets how
// many cases; the default picks 6).
var _ = Describe("chaos: a mutating command killed -9 at a random point, then down", Label("lifecycle", "chaos"), func() {
	seed := GinkgoRandomSeed()
	if s, err := strconv.ParseInt(os.Getenv("LABCTL_CHAOS_SEED"), 10, 64); err == nil {
		seed = s
	}
	runs := 6
	if n, err := strconv.Atoi(os.Getenv("LABCTL_CHAOS_RUNS")); err == nil && n > 0 {
		runs = n
	}
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < runs; i++ {
		c := chaosCases[r.Intn(len(chaosCases))]
		It(fmt.Sprintf("case %d (seed %d): %v killed at %s leaves nothing after down", i, seed, c.args[:2], c.point), func() {
			name := fmt.Sprintf("%schaos%d", labPrefix, i)
			if c.args[0] != "up" {
				out, code := run(nil, "up", topology(c.topology), "--name", name)
				Expect(code).To(Equal(0), out)
			}
			args := make([]string, len(c.args))
			for j, a := range c.args {
				switch a {
				case "LAB":
					a = name
				case "internet-to-pod":
					a = topology(a)
				case "CAPS":
					a = GinkgoT().TempDir()
				case "WEBPOD":
					a = webPods(name)[0].Name
				}
				args[j] = a
			}
			out, st := runState([]string{"LABCTL_FAULT_AT=" + c.point}, args...)
			Expect(st.Sys().(syscall.WaitStatus).Signal()).To(Equal(syscall.SIGKILL), "the crash point %s was never reached: %s", c.point, out)
			out, code := run(nil, "down", name)
			Expect(code).To(Equal(0), "down after %v was killed at %s: %s", c.args[:2], c.point, out)
			expectNothingLeft(name)
		})
	}
})
