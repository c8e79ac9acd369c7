package e2e

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/churn"
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
		dst := svc.Dest(s.Topo, *w)
		src, err := s.NS("pod51")
		Expect(err).NotTo(HaveOccurred())
		from := s.Topo.Pod("pod51").IP

		const requests = 2000
		var sent, failed atomic.Int64
		var lastErr atomic.Value
		answered := map[string]int{}
		var mu sync.Mutex
		done := make(chan struct{})
		go func() {
			defer GinkgoRecover()
			defer close(done)
			for i := 0; i < requests; i++ {
				a, err := traffic.HTTPGet(src, from, 0, dst, "", traffic.Timeout, "/")
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
		for deleted < 6 && sent.Load() < requests {
			// Spread the deletes over the requests: each starts once its
			// share of requests has gone out, so requests flow through
			// every step of every delete.
			for sent.Load() < int64((deleted+1)*requests/8) {
				time.Sleep(time.Millisecond)
			}
			t, _, err := lab.Load(name)
			Expect(err).NotTo(HaveOccurred())
			var victim string
			for _, p := range t.Pods {
				if p.Manifest == "Deployment default/web" && p.Phase == "" {
					victim = p.Name
					break
				}
			}
			Expect(victim).NotTo(BeEmpty())
			before := sent.Load()
			ch, err := churn.DeletePod(context.Background(), name, victim)
			Expect(err).NotTo(HaveOccurred())
			deleted++
			GinkgoWriter.Printf("deleted %s -> %s while requests %d..%d were sent\n", victim, ch.Started.Name, before, sent.Load())
			Expect(sent.Load()-before).To(BeNumerically(">", 10), "requests must flow during the delete")
		}
		<-done
		Expect(deleted).To(Equal(6), "the requests ended before 6 deletes: %d sent", sent.Load())
		Expect(failed.Load()).To(BeZero(), "%d of %d requests failed, the last with: %v", failed.Load(), requests, lastErr.Load())
		GinkgoWriter.Printf("answers by pod: %v\n", answered)
		Expect(len(answered)).To(BeNumerically(">", 3), "the replacements answered too")
	})
})
