//go:build linux

package run

import (
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// flow is what one kind of packet walk does in each step of the pipeline
// every walk goes through (Session.runFlow): observe, send, collect,
// derive, check, evidence, write. podFlow walks between pods, hosts,
// Services, NodePorts and cluster DNS; lbFlow walks through a load balancer.
type flow interface {
	// points are where to capture, known before anything is sent: every
	// interface the flow could touch, whichever endpoint is picked.
	points() ([]walk.Point, error)
	// prepare reads what the evidence compares against (counters).
	prepare() error
	// send sends the walk's traffic; the classifier finds its packets.
	send(run *Run) (*walk.Classifier, error)
	// expect derives the hops from what the capture shows was picked.
	expect(run *Run, cl *walk.Classifier, pkts []walk.Packet) (*walk.Expectation, error)
	// azs are the capture points' AZs, for cross-AZ accounting.
	azs() map[string]string
	// judge adds what the hops do not show: the exchange's outcome against
	// the walk's expectation, the app's answer, NAT evidence, DNS.
	judge(run *Run, e *walk.Expectation, cl *walk.Classifier, pkts []walk.Packet)
}

// Walk runs one walk: captures at every point, real traffic from the
// walk's source, and a check of every hop. The pcapng goes to outDir.
func (s *Session) Walk(w spec.Walk, outDir string) (*Run, error) {
	var f flow
	var err error
	switch {
	case w.Kind == spec.WalkSpread:
		return s.spread(w)
	case w.Kind == spec.WalkChurn:
		return s.churn(w)
	case w.Kind == spec.WalkControlPlane:
		f, err = s.newCPFlow(w)
	case w.LoadBalancer != "":
		f, err = s.newLBFlow(w)
	default:
		f, err = s.newPodFlow(w)
	}
	if err != nil {
		return nil, err
	}
	return s.runFlow(w, f, outDir)
}

// runFlow is the one pipeline of every packet walk.
func (s *Session) runFlow(w spec.Walk, f flow, outDir string) (*Run, error) {
	pts, err := f.points()
	if err != nil {
		return nil, err
	}
	caps, tr, err := s.observe(pts)
	if err != nil {
		return nil, err
	}
	defer caps.Close()
	if tr != nil {
		defer tr.stop() // on an early return: the TRACE rules and monitors go
	}
	// A previous walk's nft trace (one that ended early) goes; prepare
	// starts this flow's own, if it has one.
	s.nftw.stop()
	s.nftw = nil
	if err := f.prepare(); err != nil {
		return nil, err
	}
	run := &Run{}
	cl, err := f.send(run)
	if err != nil {
		return nil, err
	}
	frames, pkts, traces, err := collect(caps, tr)
	if err != nil {
		return nil, err
	}
	e, err := f.expect(run, cl, pkts)
	if err != nil {
		return nil, err
	}
	e.Points = pts // every captured point is named in the pcapng and must be explained
	run.Report = walk.Check(e, cl, pkts)
	run.Report.CrossAZ = walk.CountCrossAZ(f.azs(), pkts, walk.FlowPackets(cl, pkts))
	if tr != nil {
		run.Explain = s.explain(run.Report, traces)
	}
	f.judge(run, e, cl, pkts)
	if !run.Report.Passed() && w.Expect != "drop" {
		run.Report.Notes = append(run.Report.Notes, s.whereItStopped(run.Report, cl, pkts)...)
	}
	if run.Pcap, err = writePcap(outDir, s.Lab, w.Name, e, cl, frames, pkts); err != nil {
		return run, err
	}
	run.Ladder, err = writeLadder(run, w, walk.Asides(cl, pkts, w.From))
	return run, err
}
