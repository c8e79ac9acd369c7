package walk

import (
	"path/filepath"
	"testing"

	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

// planState is what the kernel would hold once a plan is applied, in the
// form CheckState reads it back: links from the veths, routes (table 0 is
// main; routes the plan deletes are gone), rules, PERMANENT and proxy
// neighbours, and sysctls.
func planState(p *plan.Plan) map[string]*NSState {
	snaps := map[string]*NSState{}
	byName := map[string]*NSState{}
	for _, n := range p.Namespaces {
		s := &NSState{Object: n.Object, Links: map[string]LinkState{}, Sysctls: map[string]string{}}
		snaps[n.Object], byName[n.Name] = s, s
		for _, a := range n.Addrs {
			s.Addrs = append(s.Addrs, AddrState{Dev: a.Dev, Prefix: a.Prefix})
		}
		for _, r := range n.Routes {
			if r.Delete {
				continue
			}
			table := r.Table
			if table == 0 {
				table = 254
			}
			s.Routes = append(s.Routes, RouteState{Table: table, Dst: r.Dst, Gw: r.Gw, Dev: r.Dev, Link: r.Link})
		}
		for _, r := range n.Rules {
			s.Rules = append(s.Rules, RuleState{Priority: r.Priority, Src: r.Src, Dst: r.Dst, Mark: r.Mark, Mask: r.Mask, Table: r.Table})
		}
		for _, nb := range n.Neighs {
			s.Neighs = append(s.Neighs, NeighState{Dev: nb.Dev, IP: nb.IP, MAC: nb.MAC, Permanent: !nb.Proxy, Proxy: nb.Proxy})
		}
		for _, k := range n.Sysctls {
			s.Sysctls[k.Key] = k.Value
		}
	}
	for _, v := range p.Veths {
		for _, e := range []plan.End{v.A, v.B} {
			if s := byName[e.NS]; s != nil {
				s.Links[e.Name] = LinkState{Name: e.Name, MAC: e.MAC, MTU: e.MTU, Up: true}
			}
		}
	}
	return snaps
}

// Every shipped topology's plan, applied as written, passes A0: the
// renderer and the A0 checker agree on the VPC CNI's plumbing (rules 512,
// 1024, 1536 and 32765, the ENI tables, the proxy ARP entries, the pods'
// PERMANENT gateway entry, rp_filter). A renderer that drifts from what
// A0 checks fails here, before any lab is built.
func TestEveryShippedTopologysPlanPassesA0(t *testing.T) {
	files, err := filepath.Glob("../../topologies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no topologies: %v", err)
	}
	for _, f := range files {
		top, err := spec.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		r := CheckState(top, planState(plan.Build(top, "a0")))
		if len(r.Checks) == 0 {
			t.Errorf("%s: A0 checked nothing", f)
		}
		for _, c := range r.Checks {
			if !c.OK {
				t.Errorf("%s: %s: %s (got %q)", filepath.Base(f), c.Object, c.What, c.Got)
			}
		}
	}
}
