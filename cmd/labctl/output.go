package main

// The machine-readable output of -o json|yaml. Every document carries
// apiVersion and kind, as Kubernetes objects do, so scripts can check what
// they parse; docs/output.md documents each kind. Fields are only ever
// added within labctl/v1: a rename or removal needs labctl/v2.

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// APIVersion is the schema version of every document labctl prints.
const APIVersion = "labctl/v1"

// TypeMeta starts every document.
type TypeMeta struct {
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	Kind       string `json:"kind" yaml:"kind"`
}

func meta(kind string) TypeMeta { return TypeMeta{APIVersion: APIVersion, Kind: kind} }

// LabList is labctl list.
type LabList struct {
	TypeMeta `yaml:",inline"`
	Current  string    `json:"current" yaml:"current"` // the current lab (labctl use), or ""
	Items    []LabItem `json:"items" yaml:"items"`
}

// LabItem is one lab that is up, or half built.
type LabItem struct {
	Name       string `json:"name" yaml:"name"`
	State      string `json:"state" yaml:"state"` // up, incomplete or broken
	Error      string `json:"error,omitempty" yaml:"error,omitempty"`
	Namespaces int    `json:"namespaces" yaml:"namespaces"`
	Created    string `json:"created,omitempty" yaml:"created,omitempty"` // RFC 3339
	Topology   string `json:"topology" yaml:"topology"`
}

// TopologyList is labctl list --topologies.
type TopologyList struct {
	TypeMeta `yaml:",inline"`
	Items    []TopologyItem `json:"items" yaml:"items"`
}

// TopologyItem is one topology built into labctl.
type TopologyItem struct {
	Name        string   `json:"name" yaml:"name"`
	Description string   `json:"description" yaml:"description"`
	Walks       []string `json:"walks" yaml:"walks"`
}

// LabStatus is labctl status.
type LabStatus struct {
	TypeMeta  `yaml:",inline"`
	Lab       string            `json:"lab" yaml:"lab"`
	Complete  bool              `json:"complete" yaml:"complete"`
	Iptables  string            `json:"iptables" yaml:"iptables"`
	VPCCNI    VPCCNIStatus      `json:"vpcCNI" yaml:"vpcCNI"`
	KubeProxy KubeProxyStatus   `json:"kubeProxy" yaml:"kubeProxy"`
	AppServer AppServer         `json:"appServer" yaml:"appServer"`
	Objects   []ObjectInterface `json:"interfaces" yaml:"interfaces"`
}

// VPCCNIStatus is the aws-node release the lab models and where its rules
// live on the nodes.
type VPCCNIStatus struct {
	Version string `json:"version" yaml:"version"`
	// Iptables holds its SNAT chain and mangle rules: iptables-nft or
	// iptables-legacy.
	Iptables string `json:"iptables" yaml:"iptables"`
	// Connmark holds its nat connmark rules: iptables-nft, iptables-legacy
	// or "nft table ip aws-cni" (v1.23+ on nf_tables nodes).
	Connmark string `json:"connmark" yaml:"connmark"`
}

// KubeProxyStatus is kube-proxy's mode on the nodes.
type KubeProxyStatus struct {
	Mode string `json:"mode" yaml:"mode"`
}

// AppServer is the lab's app server process.
type AppServer struct {
	PID     int    `json:"pid" yaml:"pid"`
	Running bool   `json:"running" yaml:"running"`
	Log     string `json:"log" yaml:"log"`
}

// ObjectInterface is one interface of one lab object, read from the kernel.
type ObjectInterface struct {
	Object    string   `json:"object" yaml:"object"`
	Namespace string   `json:"namespace" yaml:"namespace"`
	Interface string   `json:"interface" yaml:"interface"`
	State     string   `json:"state" yaml:"state"`
	MAC       string   `json:"mac" yaml:"mac"`
	MTU       int      `json:"mtu" yaml:"mtu"`
	Addresses []string `json:"addresses" yaml:"addresses"`
	Master    string   `json:"master,omitempty" yaml:"master,omitempty"`
	Error     string   `json:"error,omitempty" yaml:"error,omitempty"`
}

// WalkResultList is labctl walk: one result per walk run.
type WalkResultList struct {
	TypeMeta `yaml:",inline"`
	Lab      string       `json:"lab" yaml:"lab"`
	Passed   int          `json:"passed" yaml:"passed"`
	Failed   int          `json:"failed" yaml:"failed"`
	Items    []WalkResult `json:"items" yaml:"items"`
}

// WalkResult is one walk's outcome. Kind says which of hops, checks,
// spread or churn is filled.
type WalkResult struct {
	TypeMeta   `yaml:",inline"`
	Name       string         `json:"name" yaml:"name"`
	Title      string         `json:"title" yaml:"title"`
	WalkKind   string         `json:"walkKind" yaml:"walkKind"` // packet, state, spread or churn
	Verdict    string         `json:"verdict" yaml:"verdict"`   // PASS, FAIL or ERROR
	Error      string         `json:"error,omitempty" yaml:"error,omitempty"`
	Proto      string         `json:"proto,omitempty" yaml:"proto,omitempty"`
	From       *WalkEnd       `json:"from,omitempty" yaml:"from,omitempty"`
	To         *WalkEnd       `json:"to,omitempty" yaml:"to,omitempty"`
	Endpoint   *WalkEnd       `json:"endpoint,omitempty" yaml:"endpoint,omitempty"`
	Hops       []HopOut       `json:"hops,omitempty" yaml:"hops,omitempty"`
	Unexpected []HopOut       `json:"unexpected,omitempty" yaml:"unexpected,omitempty"`
	Notes      []string       `json:"notes,omitempty" yaml:"notes,omitempty"`
	CrossAZ    *CrossAZOut    `json:"crossAZ,omitempty" yaml:"crossAZ,omitempty"`
	Evidence   []NATEvidence  `json:"evidence,omitempty" yaml:"evidence,omitempty"`
	Checks     []StateCheck   `json:"checks,omitempty" yaml:"checks,omitempty"`
	Answers    map[string]int `json:"answers,omitempty" yaml:"answers,omitempty"` // spread: answers per pod
	Failures   int            `json:"failures,omitempty" yaml:"failures,omitempty"`
	Capture    string         `json:"capture,omitempty" yaml:"capture,omitempty"` // the run's pcapng
	Ladder     string         `json:"ladder,omitempty" yaml:"ladder,omitempty"`   // the run's ladder page
}

// WalkEnd is a walk's source, destination or chosen endpoint.
type WalkEnd struct {
	Object string `json:"object" yaml:"object"`
	IP     string `json:"ip" yaml:"ip"`
}

// HopOut is one hop: where the packet must be seen, what was seen, and
// the verdict.
type HopOut struct {
	Index   int      `json:"index" yaml:"index"` // 1-based; 0 for an unexpected packet
	Leg     string   `json:"leg" yaml:"leg"`
	Point   string   `json:"point" yaml:"point"` // object/interface
	Dir     string   `json:"dir" yaml:"dir"`
	Verdict string   `json:"verdict" yaml:"verdict"`
	Seen    string   `json:"seen,omitempty" yaml:"seen,omitempty"`
	Frame   int      `json:"frame,omitempty" yaml:"frame,omitempty"` // frame number in the capture
	Diffs   []string `json:"diffs,omitempty" yaml:"diffs,omitempty"`
	NAT     string   `json:"nat,omitempty" yaml:"nat,omitempty"`
	Why     string   `json:"why" yaml:"why"`
	Kernel  []string `json:"kernel,omitempty" yaml:"kernel,omitempty"` // walk --explain
}

// CrossAZOut is the run's bytes that crossed an AZ boundary.
type CrossAZOut struct {
	Packets   int            `json:"packets" yaml:"packets"`
	Bytes     int            `json:"bytes" yaml:"bytes"`
	CostUSD   float64        `json:"costUSD" yaml:"costUSD"`
	Crossings map[string]int `json:"crossings,omitempty" yaml:"crossings,omitempty"`
	// Spread walks: requests that crossed, of those answered, and the
	// monthly cost at MonthlyRate requests a second.
	CrossedRequests int     `json:"crossedRequests,omitempty" yaml:"crossedRequests,omitempty"`
	Requests        int     `json:"requests,omitempty" yaml:"requests,omitempty"`
	MonthlyUSD      float64 `json:"monthlyUSD,omitempty" yaml:"monthlyUSD,omitempty"`
	MonthlyRate     int     `json:"monthlyRate,omitempty" yaml:"monthlyRate,omitempty"`
}

// NATEvidence is what one node's kernel says it translated.
type NATEvidence struct {
	Node      string   `json:"node" yaml:"node"`
	Chains    []string `json:"chains" yaml:"chains"`
	NFT       []string `json:"nft,omitempty" yaml:"nft,omitempty"`
	Conntrack []string `json:"conntrack" yaml:"conntrack"`
}

// StateCheck is one fact of a state walk (A0).
type StateCheck struct {
	Object string `json:"object" yaml:"object"`
	What   string `json:"what" yaml:"what"`
	OK     bool   `json:"ok" yaml:"ok"`
	Got    string `json:"got,omitempty" yaml:"got,omitempty"`
}

// NamedList is the list kinds with one line per item (FaultList,
// ExerciseList, PodList, LoadBalancerList).
type NamedList struct {
	TypeMeta `yaml:",inline"`
	Lab      string              `json:"lab,omitempty" yaml:"lab,omitempty"`
	Items    []map[string]string `json:"items" yaml:"items"`
}

// LoadBalancerList is labctl lb: each load balancer, and each target's
// health as the load balancer sees it.
type LoadBalancerList struct {
	TypeMeta `yaml:",inline"`
	Lab      string              `json:"lab" yaml:"lab"`
	Items    []map[string]string `json:"items" yaml:"items"`
	Targets  []TargetOut         `json:"targets" yaml:"targets"`
}

// TargetOut is one registered target and its health.
type TargetOut struct {
	LoadBalancer string `json:"loadBalancer" yaml:"loadBalancer"`
	TargetGroup  string `json:"targetGroup" yaml:"targetGroup"`
	Target       string `json:"target" yaml:"target"`
	Health       string `json:"health" yaml:"health"` // healthy, unhealthy, ... or unknown
	Reason       string `json:"reason,omitempty" yaml:"reason,omitempty"`
}

func verdictOf(passed bool) string {
	if passed {
		return "PASS"
	}
	return "FAIL"
}

func hopOut(i int, h walk.HopResult, kernel []string) HopOut {
	o := HopOut{Index: i, Leg: string(h.Leg), Point: h.Point.String(), Dir: string(h.Dir), Verdict: h.Verdict,
		Diffs: h.Diffs, NAT: h.NAT, Why: h.Why, Kernel: kernel}
	if h.Seen != nil {
		o.Seen, o.Frame = h.Seen.Summary(), h.Seen.Frame
	}
	return o
}

// packetResult is a packet walk's report as a WalkResult.
func packetResult(r *walk.Report, explain map[int][]string, evidence []run.NATEvidence, pcap, ladder string) WalkResult {
	e := r.Expectation
	w := WalkResult{TypeMeta: meta("WalkResult"), Name: e.Walk.Name, Title: e.Walk.Title, WalkKind: "packet",
		Verdict: verdictOf(r.Passed()), Proto: e.Proto, Notes: r.Notes, Capture: pcap, Ladder: ladder,
		From: &WalkEnd{e.From.Object, e.From.IP.String()}, To: &WalkEnd{e.To.Object, e.To.IP.String()}}
	if e.Endpoint != nil {
		w.Endpoint = &WalkEnd{e.Endpoint.Object, e.Endpoint.IP.String()}
	}
	w.Hops = []HopOut{}
	for i, h := range r.Hops {
		w.Hops = append(w.Hops, hopOut(i+1, h, explain[i]))
	}
	for _, h := range r.Unexpected {
		w.Unexpected = append(w.Unexpected, hopOut(0, h, nil))
	}
	w.CrossAZ = &CrossAZOut{Packets: r.CrossAZ.Packets, Bytes: r.CrossAZ.Bytes, CostUSD: r.CrossAZ.Cost(),
		Crossings: r.CrossAZ.Crossings}
	for _, ev := range evidence {
		w.Evidence = append(w.Evidence, NATEvidence{Node: ev.Node, Chains: ev.Chains, NFT: ev.NFT, Conntrack: ev.Conntrack})
	}
	return w
}

func stateResult(wk spec.Walk, r *walk.StateReport) WalkResult {
	w := WalkResult{TypeMeta: meta("WalkResult"), Name: wk.Name, Title: wk.Title, WalkKind: "state",
		Verdict: verdictOf(r.Passed())}
	for _, c := range r.Checks {
		w.Checks = append(w.Checks, StateCheck{Object: c.Object, What: c.What, OK: c.OK, Got: c.Got})
	}
	return w
}

func runResult(wk spec.Walk, r *run.Run) WalkResult {
	switch {
	case r.Spread != nil:
		sp := r.Spread
		return WalkResult{TypeMeta: meta("WalkResult"), Name: wk.Name, Title: wk.Title, WalkKind: "spread",
			Verdict: verdictOf(sp.Passed()), Answers: sp.Counts, Failures: sp.Failures, Notes: sp.Notes,
			CrossAZ: &CrossAZOut{Packets: sp.CrossAZ.Packets, Bytes: sp.CrossAZ.Bytes, CostUSD: sp.CrossAZ.Cost(),
				Crossings: sp.CrossAZ.Crossings, CrossedRequests: sp.CrossedRequests, Requests: sp.Answered(),
				MonthlyUSD: sp.MonthlyCost(), MonthlyRate: walk.SpreadRequestRate}}
	case r.Churn != nil:
		w := WalkResult{TypeMeta: meta("WalkResult"), Name: wk.Name, Title: wk.Title, WalkKind: "churn",
			Verdict: verdictOf(r.Churn.Passed()), Answers: r.Churn.After, Failures: r.Churn.Failures}
		if why := r.Churn.Why(); why != "" {
			w.Notes = []string{why}
		}
		return w
	}
	return packetResult(r.Report, r.Explain, r.NATEvidence, r.Pcap, r.Ladder)
}

func errorResult(wk spec.Walk, err error) WalkResult {
	return WalkResult{TypeMeta: meta("WalkResult"), Name: wk.Name, Title: wk.Title, WalkKind: walkKind(wk),
		Verdict: "ERROR", Error: err.Error()}
}

func walkKind(wk spec.Walk) string {
	if wk.Kind == spec.WalkState {
		return "state"
	}
	return "packet"
}

// outputFlag is -o json|yaml; empty means the tables for people.
type outputFlag struct{ format string }

func (o *outputFlag) register(c *cobra.Command) {
	c.Flags().StringVarP(&o.format, "output", "o", "", "print json or yaml (schema: docs/output.md) instead of a table")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// check rejects a format other than json or yaml before any work is done.
func (o *outputFlag) check() error {
	switch o.format {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("-o %q: labctl prints json or yaml (or, without -o, a table)", o.format)
}

func (o *outputFlag) machine() bool { return o.format != "" }

// print writes v as JSON or YAML.
func (o *outputFlag) print(w io.Writer, v any) error { return writeDoc(w, o.format, v) }

func writeDoc(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return err
		}
		return enc.Close()
	}
	return fmt.Errorf("-o %q: labctl prints json or yaml", format)
}

// sortedKeys is for the deterministic order of map-backed lists.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
