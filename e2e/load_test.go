package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/churn"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/traffic"
	"github.com/labctl/labctl/lab/walk"
)

// Requests while endpoints churn: a new pod's endpoint is added only once
// its app listens, and a deleted pod's endpoint turns terminating before it
// goes, so no request is refused or lost (issue: connection refused from a
// replacement that was DNATed to before it listened).
var _ = Describe("requests while a Deployment's pods are deleted", Ordered, Label("services", "load"), func() {
	const name = labPrefix + "load"
	var s *lab.Session
	BeforeAll(func() { s = session("clusterip", name) })

	It("2,000 requests to a ClusterIP while 6 of its endpoint pods are deleted in turn: none fails", func() {
		w := s.Topo.Walk("B1")
		svc := walk.ServiceOf(s.Topo, *w)
		loadDuringChurn(s, name, "pod51", svc.Dest(s.Topo, *w))
	})
})

var _ = Describe("requests through an NLB while its target pods are deleted", Ordered, Label("lb", "load"), func() {
	const name = labPrefix + "loadnlb"
	var s *lab.Session
	BeforeAll(func() {
		// Two web pods on each node, so every AZ keeps a target while one
		// of its pods is replaced (with one, an AZ without cross-zone has
		// none for a while, and AWS's NLB node drops its flows too).
		b, err := os.ReadFile(topology("nlb-ip"))
		Expect(err).NotTo(HaveOccurred())
		text := strings.Replace(string(b), "  replicas: 3\n", "  replicas: 6\n", 1)
		Expect(text).To(ContainSubstring("replicas: 6"))
		file := filepath.Join(GinkgoT().TempDir(), "nlb-ip-6.yaml")
		Expect(os.WriteFile(file, []byte(text), 0o644)).To(Succeed())
		upFile(file, name)
		s, err = lab.OpenSession(name)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(s.Close)
	})

	It("2,000 requests from a client host to an NLB with ip targets while 6 of its pods are deleted in turn: none fails", func() {
		_, _, node, li, err := walk.LBOf(s.Topo, *s.Topo.Walk("C3"))
		Expect(err).NotTo(HaveOccurred())
		loadDuringChurn(s, name, "client", netip.AddrPortFrom(node.IP, uint16(li.Port)))
	})
})

// loadDuringChurn sends 2,000 requests, each on a new connection, from an
// object of lab name to dst, while deleting 6 of Deployment default/web's
// pods in turn, the deletes spread over the requests: none may fail.
func loadDuringChurn(s *lab.Session, name, from string, dst netip.AddrPort) {
	GinkgoHelper()
	src, err := s.NS(from)
	Expect(err).NotTo(HaveOccurred())
	client, err := walk.EndpointOf(s.Topo, from)
	Expect(err).NotTo(HaveOccurred())

	const requests = 2000
	var sent, failed atomic.Int64
	// Requests go on past 2,000 until the sixth delete is done: a delete
	// through a load balancer waits for health checks, and takes longer
	// than 2,000 requests to a ClusterIP.
	var deletesDone atomic.Bool
	var lastErr atomic.Value
	answered := map[string]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		for i := 0; i < requests || !deletesDone.Load(); i++ {
			a, err := traffic.HTTPGet(src, client.IP, 0, dst, "", traffic.Timeout, "/")
			sent.Add(1)
			if err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
				continue
			}
			mu.Lock()
			answered[a.Object]++
			mu.Unlock()
		}
	}()
	deleted := 0
	for deleted < 6 {
		// Each delete starts once its share of requests has gone out, so
		// requests flow through every step of every delete.
		for sent.Load() < int64((deleted+1)*requests/8) {
			time.Sleep(time.Millisecond)
		}
		before := sent.Load()
		ch, err := churn.DeletePodOf(context.Background(), name, func(t *spec.Topology) (string, error) {
			for _, p := range t.Pods {
				if p.Manifest == "Deployment default/web" && p.Phase == "" {
					return p.Name, nil
				}
			}
			return "", fmt.Errorf("no web pod is running")
		})
		Expect(err).NotTo(HaveOccurred())
		deleted++
		GinkgoWriter.Printf("deleted %s -> %s while requests %d..%d were sent\n", ch.Deleted.Name, ch.Started.Name, before, sent.Load())
		Expect(sent.Load()-before).To(BeNumerically(">", 10), "requests must flow during the delete")
	}
	deletesDone.Store(true)
	<-done
	Expect(deleted).To(Equal(6))
	Expect(failed.Load()).To(BeZero(), "%d of %d requests failed, the last with: %v", failed.Load(), sent.Load(), lastErr.Load())
	GinkgoWriter.Printf("%d requests, none failed\n", sent.Load())
	GinkgoWriter.Printf("answers by pod: %v\n", answered)
	Expect(len(answered)).To(BeNumerically(">", 3), "the replacements answered too")
}

var _ = Describe("two churn walks on one lab at once", Label("services", "load"), func() {
	It("each deletes its own pod under the lab's lock; neither aborts the other", func() {
		name := labPrefix + "churn2"
		up("clusterip", name)
		var wg sync.WaitGroup
		deleted := make([]string, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				s, err := lab.OpenSession(name)
				if err != nil {
					errs[i] = err
					return
				}
				defer s.Close()
				run, err := s.Walk(*s.Topo.Walk("B4"), GinkgoT().TempDir())
				if err == nil {
					deleted[i] = run.Churn.Change.Deleted.Name
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		Expect(errs[0]).NotTo(HaveOccurred())
		Expect(errs[1]).NotTo(HaveOccurred())
		Expect(deleted[0]).NotTo(Equal(deleted[1]), "both walks deleted the same pod")
	})
})
