package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/labctl/labctl/lab/run"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// aReport is a two-hop walk whose reply hop differed.
func aReport() *walk.Report {
	mac, _ := net.ParseMAC("0e:0d:59:99:72:b4")
	seen := &walk.Packet{Point: walk.Point{Object: "node81", Iface: "eth1"}, Dir: walk.Out, Frame: 7, SrcMAC: mac, DstMAC: mac,
		Proto: "icmp", Src: netip.MustParseAddr("192.168.1.81"), Dst: netip.MustParseAddr("192.168.1.51")}
	return &walk.Report{
		Expectation: &walk.Expectation{Walk: spec.Walk{Name: "A3", Title: "secondary ENI"}, Proto: "icmp",
			From: walk.Endpoint{Object: "pod51", IP: netip.MustParseAddr("192.168.1.51")},
			To:   walk.Endpoint{Object: "pod81", IP: netip.MustParseAddr("192.168.1.81")}},
		Hops: []walk.HopResult{
			{Hop: walk.Hop{Leg: walk.Request, Point: walk.Point{Object: "node51", Iface: "eth0"}, Dir: walk.Out, Why: "main table"},
				Verdict: walk.OK, Seen: seen},
			{Hop: walk.Hop{Leg: walk.Reply, Point: walk.Point{Object: "node81", Iface: "eth1"}, Dir: walk.Out, Why: "table 2"},
				Verdict: walk.Missing},
		},
		Notes:   []string{"a note"},
		CrossAZ: walk.CrossAZ{Packets: 2, Bytes: 196, Crossings: map[string]int{"us-east-1a -> us-east-1b": 2}},
	}
}

func TestWalkResultJSONHasTheSchemaFields(t *testing.T) {
	doc := WalkResultList{TypeMeta: meta("WalkResultList"), Lab: "mine", Passed: 0, Failed: 1,
		Items: []WalkResult{packetResult(aReport(), map[int][]string{1: {"rule 1536"}},
			[]run.NATEvidence{{Node: "node51", Chains: []string{"KUBE-SVC-X"}}}, "captures/a.pcapng", "captures/a.html")}}
	var buf bytes.Buffer
	if err := writeDoc(&buf, "json", doc); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("the JSON does not parse: %v\n%s", err, buf.String())
	}
	if got["apiVersion"] != "labctl/v1" || got["kind"] != "WalkResultList" || got["lab"] != "mine" {
		t.Errorf("document head: %v %v %v", got["apiVersion"], got["kind"], got["lab"])
	}
	item := got["items"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"apiVersion": "labctl/v1", "kind": "WalkResult", "name": "A3", "walkKind": "packet",
		"verdict": "FAIL", "proto": "icmp", "capture": "captures/a.pcapng", "ladder": "captures/a.html"} {
		if item[k] != want {
			t.Errorf("items[0].%s = %v, want %v", k, item[k], want)
		}
	}
	if from := item["from"].(map[string]any); from["object"] != "pod51" || from["ip"] != "192.168.1.51" {
		t.Errorf("from = %v", from)
	}
	hops := item["hops"].([]any)
	if len(hops) != 2 {
		t.Fatalf("%d hops, want 2", len(hops))
	}
	h1, h2 := hops[0].(map[string]any), hops[1].(map[string]any)
	if h1["index"] != 1.0 || h1["point"] != "node51/eth0" || h1["verdict"] != "ok" || h1["frame"] != 7.0 || h1["leg"] != "request" {
		t.Errorf("hop 1 = %v", h1)
	}
	if h2["verdict"] != "MISSING" || h2["kernel"].([]any)[0] != "rule 1536" || h2["why"] != "table 2" {
		t.Errorf("hop 2 = %v (its kernel lines are explain[1])", h2)
	}
	if c := item["crossAZ"].(map[string]any); c["bytes"] != 196.0 || c["costUSD"].(float64) <= 0 {
		t.Errorf("crossAZ = %v", c)
	}
	if ev := item["evidence"].([]any)[0].(map[string]any); ev["node"] != "node51" {
		t.Errorf("evidence = %v", ev)
	}
}

func TestWalkResultYAMLParsesWithTheSameFieldNames(t *testing.T) {
	var buf bytes.Buffer
	if err := writeDoc(&buf, "yaml", packetResult(aReport(), nil, nil, "a.pcapng", "")); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := yaml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("the YAML does not parse: %v\n%s", err, buf.String())
	}
	if got["apiVersion"] != "labctl/v1" || got["kind"] != "WalkResult" || got["walkKind"] != "packet" || got["capture"] != "a.pcapng" {
		t.Errorf("YAML head: %v", got)
	}
	if hops := got["hops"].([]any); hops[0].(map[string]any)["point"] != "node51/eth0" {
		t.Errorf("YAML hop 1: %v", hops[0])
	}
}

func TestStateResultFailsOnAFalseFact(t *testing.T) {
	r := stateResult(spec.Walk{Name: "A0"}, &walk.StateReport{Checks: []walk.StateCheck{{Object: "node51", What: "rp_filter", OK: false, Got: "1"}}})
	if r.Verdict != "FAIL" || r.WalkKind != "state" || len(r.Checks) != 1 || r.Checks[0].Got != "1" {
		t.Errorf("state result = %+v", r)
	}
}

func TestTopologyListHasEveryTopologyWithItsWalks(t *testing.T) {
	doc, err := topologyList()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeDoc(&buf, "json", doc); err != nil {
		t.Fatal(err)
	}
	var got struct {
		APIVersion, Kind string
		Items            []struct {
			Name, Description string
			Walks             []string
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.APIVersion != "labctl/v1" || got.Kind != "TopologyList" {
		t.Errorf("head: %q %q", got.APIVersion, got.Kind)
	}
	found := false
	for _, it := range got.Items {
		if it.Name == "pod-networking" && strings.Contains(strings.Join(it.Walks, " "), "A3") && it.Description != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("pod-networking with walk A3 missing from %s", buf.String())
	}
}

func TestOutputFormatOtherThanJSONOrYAMLIsRefused(t *testing.T) {
	for _, f := range []string{"", "json", "yaml"} {
		if err := (&outputFlag{f}).check(); err != nil {
			t.Errorf("-o %q refused: %v", f, err)
		}
	}
	if err := (&outputFlag{"captures"}).check(); err == nil {
		t.Error("-o captures (the old walk -o) accepted")
	}
}

// Every field a document can carry is documented in docs/output.md, so
// the schema there cannot fall behind the code.
func TestEveryOutputFieldIsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/output.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seen := map[reflect.Type]bool{}
	var walkType func(reflect.Type)
	walkType = func(ty reflect.Type) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice || ty.Kind() == reflect.Map {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct || seen[ty] {
			return
		}
		seen[ty] = true
		for i := 0; i < ty.NumField(); i++ {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			// documented as `name`, `a.name`, `name[]` or `name.field`
			if name != "" && !regexp.MustCompile("[`.]"+regexp.QuoteMeta(name)+"[`.\\[]").MatchString(doc) {
				t.Errorf("docs/output.md does not document %s.%s (json %q)", ty.Name(), f.Name, name)
			}
			walkType(f.Type)
		}
	}
	for _, v := range []any{LabList{}, TopologyList{}, LabStatus{}, WalkResultList{}, NamedList{}, LoadBalancerList{}} {
		walkType(reflect.TypeOf(v))
	}
	for _, kind := range []string{"LabList", "TopologyList", "LabStatus", "WalkResultList", "WalkResult", "FaultList",
		"ExerciseList", "PodList", "LoadBalancerList"} {
		if !strings.Contains(doc, kind) {
			t.Errorf("docs/output.md does not document kind %s", kind)
		}
	}
}
