// Package draw renders pictures of labs and walks: a lab's namespaces and
// links as Graphviz DOT or Mermaid, and a walk run as a ladder diagram (an
// HTML page with an SVG) showing each rewrite of addresses and MACs. It is
// pure; the CLI runs Graphviz's dot for SVG.
package draw

import (
	"fmt"
	"html"
	"sort"
	"strings"

	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

func object(p *plan.Plan, nsName string) *plan.Namespace {
	for _, n := range p.Namespaces {
		if n.Name == nsName {
			return n
		}
	}
	return nil
}

func id(s string) string {
	return "n_" + strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(s)
}

var roleStyle = map[plan.Role]string{
	plan.RoleRouter:       `shape=box3d, style=filled, fillcolor="#fde2c8"`,
	plan.RoleNode:         `shape=box, style="rounded,filled", fillcolor="#d6e9f8"`,
	plan.RolePod:          `shape=ellipse, style=filled, fillcolor="#e4f4dc"`,
	plan.RoleHost:         `shape=box, style=filled, fillcolor="#eeeeee"`,
	plan.RoleLoadBalancer: `shape=hexagon, style=filled, fillcolor="#f8d7da"`,
	plan.RoleGateway:      `shape=octagon, style=filled, fillcolor="#fff3bf"`,
	plan.RoleNATGateway:   `shape=octagon, style=filled, fillcolor="#ffe8cc"`,
	plan.RoleInternet:     `shape=box3d, style=filled, fillcolor="#e5dbff"`,
	plan.RoleInternetHost: `shape=box, style=filled, fillcolor="#f3f0ff"`,
}

// label is a namespace's box text: its name and its addresses.
func label(n *plan.Namespace) string {
	lines := []string{n.Object + " (" + string(n.Role) + ")"}
	for _, a := range n.Addrs {
		lines = append(lines, a.Dev+" "+a.Prefix.String())
	}
	return strings.Join(lines, "\\n")
}

// DOT is the lab as a Graphviz graph: one box per namespace with its
// addresses, one edge per veth pair labelled with both interface names.
// With the topology, instances and their pods are drawn inside their AZ
// and the subnet of their primary ENI, a pod's edge names the ENI it sits
// on, and the internet side (gateway, internet router, internet hosts) is
// a group of its own.
func DOT(p *plan.Plan, t ...*spec.Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %q {\n  graph [rankdir=LR, fontname=\"Helvetica\", label=\"lab %s\"];\n", p.Lab, p.Lab)
	b.WriteString("  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];\n")
	box := func(indent string, n *plan.Namespace) {
		fmt.Fprintf(&b, "%s%s [label=\"%s\", %s];\n", indent, id(n.Object), label(n), roleStyle[n.Role])
	}
	var top *spec.Topology
	if len(t) > 0 {
		top = t[0]
	}
	groups := groupsOf(p, top)
	placed := map[string]bool{}
	if top != nil {
		for ai, az := range top.AZs {
			fmt.Fprintf(&b, "  subgraph cluster_az%d {\n    label=%q; style=dashed;\n", ai, "AZ "+az.Name)
			for si, sn := range az.Subnets {
				members := groups.subnet[sn.Name]
				if len(members) == 0 {
					continue
				}
				fmt.Fprintf(&b, "    subgraph cluster_az%d_s%d {\n      label=%q; style=rounded;\n", ai, si, "subnet "+sn.Name+" "+sn.CIDR.String())
				for _, n := range members {
					box("      ", n)
					placed[n.Object] = true
				}
				b.WriteString("    }\n")
			}
			b.WriteString("  }\n")
		}
		if len(groups.internet) > 0 {
			b.WriteString("  subgraph cluster_internet {\n    label=\"the internet side: the gateway, the internet router and its hosts (documentation ranges only)\"; style=dotted;\n")
			for _, n := range groups.internet {
				box("    ", n)
				placed[n.Object] = true
			}
			b.WriteString("  }\n")
		}
	}
	for _, n := range p.Namespaces {
		if !placed[n.Object] {
			box("  ", n)
		}
	}
	for _, v := range p.Veths {
		a, z := object(p, v.A.NS), object(p, v.B.NS)
		extra := ""
		if top != nil {
			for _, o := range []*plan.Namespace{a, z} {
				if pod := top.Pod(o.Object); pod != nil {
					extra = fmt.Sprintf(", label=\"on %s\"", spec.ENIName(pod.ENI))
				}
			}
		}
		fmt.Fprintf(&b, "  %s -- %s [taillabel=\"%s\", headlabel=\"%s\"%s];\n", id(a.Object), id(z.Object), v.A.Name, v.B.Name, extra)
	}
	b.WriteString("}\n")
	return b.String()
}

// groups places namespaces for DOT: instances and hosts in the subnet of
// their first ENI, a pod beside its node, the internet side apart; the
// router and load balancers (in every AZ) stay outside.
type groups struct {
	subnet   map[string][]*plan.Namespace
	internet []*plan.Namespace
}

func groupsOf(p *plan.Plan, t *spec.Topology) groups {
	g := groups{subnet: map[string][]*plan.Namespace{}}
	if t == nil {
		return g
	}
	home := map[string]string{} // instance -> subnet
	for _, n := range t.Nodes {
		if len(n.ENIs) > 0 {
			home[n.Name] = n.ENIs[0].Subnet
		}
	}
	for _, h := range t.Hosts {
		home[h.Name] = h.Subnet
	}
	for _, g := range t.NATGateways {
		home[g.Name] = g.Subnet
	}
	for _, n := range p.Namespaces {
		switch {
		case n.Role == plan.RoleGateway || n.Role == plan.RoleInternet || n.Role == plan.RoleInternetHost:
			g.internet = append(g.internet, n)
		case n.Role == plan.RolePod && home[n.Node] != "":
			g.subnet[home[n.Node]] = append(g.subnet[home[n.Node]], n)
		case home[n.Object] != "" && (n.Role == plan.RoleNode || n.Role == plan.RoleHost || n.Role == plan.RoleNATGateway):
			g.subnet[home[n.Object]] = append(g.subnet[home[n.Object]], n)
		}
	}
	return g
}

// Mermaid is the same graph as a Mermaid flowchart, for Markdown docs.
func Mermaid(p *plan.Plan) string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for _, n := range p.Namespaces {
		text := strings.ReplaceAll(label(n), "\\n", "<br/>")
		switch n.Role {
		case plan.RolePod:
			fmt.Fprintf(&b, "  %s([\"%s\"])\n", id(n.Object), text)
		case plan.RoleRouter, plan.RoleInternet:
			fmt.Fprintf(&b, "  %s[[\"%s\"]]\n", id(n.Object), text)
		case plan.RoleLoadBalancer:
			fmt.Fprintf(&b, "  %s{{\"%s\"}}\n", id(n.Object), text)
		default:
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", id(n.Object), text)
		}
	}
	for _, v := range p.Veths {
		a, z := object(p, v.A.NS), object(p, v.B.NS)
		fmt.Fprintf(&b, "  %s ---|\"%s : %s\"| %s\n", id(a.Object), v.A.Name, v.B.Name, id(z.Object))
	}
	return b.String()
}

// Ladder is a walk run as a ladder diagram: one lifeline per namespace in
// the order the packets meet them, one arrow per move between namespaces,
// labelled with the addresses, ports and MACs the capture showed there and
// any NAT; failed hops in red. The page is self-contained HTML.
func Ladder(r *walk.Report, title, pcap string, asides ...walk.Aside) string {
	var cols []string
	col := map[string]int{}
	for _, h := range r.Hops {
		if _, ok := col[h.Point.Object]; !ok {
			col[h.Point.Object] = len(cols)
			cols = append(cols, h.Point.Object)
		}
	}
	const colW, rowH, top = 150, 58, 60
	x := func(obj string) int { return 80 + col[obj]*colW }
	type arrow struct {
		from, to HopView
	}
	var arrows []arrow
	for i := 0; i+1 < len(r.Hops); i++ {
		a, b := r.Hops[i], r.Hops[i+1]
		if a.Leg == b.Leg && a.Point.Object != b.Point.Object {
			arrows = append(arrows, arrow{view(a), view(b)})
		}
	}
	for _, a := range asides {
		if _, ok := col[a.Point.Object]; !ok {
			col[a.Point.Object] = len(cols)
			cols = append(cols, a.Point.Object)
		}
	}
	width := 80 + len(cols)*colW
	height := top + len(arrows)*rowH + len(asides)*24 + 40
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="Helvetica,Arial" font-size="10">`, width, height)
	for _, c := range cols {
		fmt.Fprintf(&s, `<text x="%d" y="30" text-anchor="middle" font-weight="bold" font-size="12">%s</text>`, x(c), html.EscapeString(c))
		fmt.Fprintf(&s, `<line x1="%d" y1="40" x2="%d" y2="%d" stroke="#999" stroke-dasharray="4 3"/>`, x(c), x(c), height-20)
	}
	for i, a := range arrows {
		y := top + i*rowH + 20
		color := "#1b6e20"
		if a.to.Verdict != walk.OK || a.from.Verdict != walk.OK {
			color = "#c62828"
		}
		if a.from.Leg == walk.Reply && color != "#c62828" {
			color = "#1565c0"
		}
		x1, x2 := x(a.from.Object), x(a.to.Object)
		fmt.Fprintf(&s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`, x1, y, x2, y, color)
		dx := 8
		if x2 < x1 {
			dx = -8
		}
		fmt.Fprintf(&s, `<polygon points="%d,%d %d,%d %d,%d" fill="%s"/>`, x2, y, x2-dx, y-4, x2-dx, y+4, color)
		mid := (x1 + x2) / 2
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text>`, mid, y-18, color, html.EscapeString(a.to.Addrs))
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="middle" fill="#555">%s</text>`, mid, y-6, html.EscapeString(a.to.MACs))
		if nat := a.from.NAT + a.to.NAT; nat != "" {
			fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="middle" fill="#8e24aa">%s</text>`, mid, y+14, html.EscapeString(nat))
		}
	}
	// The asides below the hops: a DNS exchange first made, an ARP request
	// nobody answered (red), each at its own column.
	for i, a := range asides {
		y := top + len(arrows)*rowH + i*24 + 20
		color := "#6d4c41"
		if a.Bad {
			color = "#c62828"
		}
		fmt.Fprintf(&s, `<circle cx="%d" cy="%d" r="4" fill="%s"/>`, x(a.Point.Object), y, color)
		fmt.Fprintf(&s, `<text x="%d" y="%d" fill="%s">%s (frame %d)</text>`, x(a.Point.Object)+8, y+4, color,
			html.EscapeString(a.Point.Iface+": "+a.What), a.Frame)
	}
	s.WriteString("</svg>")
	var page strings.Builder
	fmt.Fprintf(&page, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>%s</title>\n", html.EscapeString(title))
	page.WriteString("<style>body{font-family:Helvetica,Arial;margin:24px} table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #ccc;padding:3px 6px} .bad{color:#c62828}</style></head><body>\n")
	fmt.Fprintf(&page, "<h2>%s</h2>\n<p>Capture: <code>%s</code> (open it in Wireshark; the interface of each frame is namespace/interface). Green: request, blue: reply, red: a hop that differed, purple: a translation.</p>\n",
		html.EscapeString(title), html.EscapeString(pcap))
	page.WriteString(s.String())
	page.WriteString("\n<h3>Every hop</h3>\n<table><tr><th>#</th><th>leg</th><th>where</th><th>dir</th><th>seen</th><th>verdict</th><th>why</th></tr>\n")
	for i, h := range append(append([]walk.HopResult{}, r.Hops...), r.Unexpected...) {
		seen := "-"
		if h.Seen != nil {
			seen = h.Seen.Summary()
		}
		cls := ""
		if h.Verdict != walk.OK {
			cls = ` class="bad"`
		}
		fmt.Fprintf(&page, "<tr%s><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", cls, i+1,
			h.Leg, html.EscapeString(h.Point.String()), h.Dir, html.EscapeString(seen), h.Verdict, html.EscapeString(h.Why))
	}
	page.WriteString("</table>\n")
	if len(asides) > 0 {
		page.WriteString("<h3>Other packets of the run</h3>\n<table><tr><th>frame</th><th>where</th><th>what</th></tr>\n")
		for _, a := range asides {
			cls := ""
			if a.Bad {
				cls = ` class="bad"`
			}
			fmt.Fprintf(&page, "<tr%s><td>%d</td><td>%s</td><td>%s</td></tr>\n", cls, a.Frame, html.EscapeString(a.Point.String()), html.EscapeString(a.What))
		}
		page.WriteString("</table>\n")
	}
	page.WriteString("</body></html>\n")
	return page.String()
}

// HopView is what a ladder shows of one hop.
type HopView struct {
	Object, Addrs, MACs, NAT, Verdict string
	Leg                               walk.Leg
}

func view(h walk.HopResult) HopView {
	v := HopView{Object: h.Point.Object, NAT: h.NAT, Verdict: h.Verdict, Leg: h.Leg}
	p := h.Seen
	if p != nil {
		v.Addrs = fmt.Sprintf("%s > %s", hostPort(p.Src.String(), p.SrcPort, p.Proto), hostPort(p.Dst.String(), p.DstPort, p.Proto))
		v.MACs = fmt.Sprintf("%s > %s", p.SrcMAC, p.DstMAC)
	} else {
		v.Addrs = fmt.Sprintf("expected %s > %s, not seen", h.Src, h.Dst)
	}
	return v
}

func hostPort(a string, port uint16, proto string) string {
	if port == 0 || proto == "icmp" {
		return a
	}
	return fmt.Sprintf("%s:%d", a, port)
}

// Objects lists the namespaces a plan draws, sorted; used by tests.
func Objects(p *plan.Plan) []string {
	var out []string
	for _, n := range p.Namespaces {
		out = append(out, n.Object)
	}
	sort.Strings(out)
	return out
}
