package spec

import (
	"net/netip"
	"strings"
	"testing"
)

// natLab puts subnet a behind nat-a (in b) and b on the internet gateway.
const natLab = `
routeTables:
  - name: private
    routes: [{dst: 0.0.0.0/0, natGateway: nat-a}]
  - name: public
    routes: [{dst: 0.0.0.0/0, internetGateway: true}]
natGateways:
  - {name: nat-a, subnet: b, ip: 192.168.2.20, publicIP: 203.0.113.20}
internet:
  hosts: [{name: server, ip: 198.51.100.10}]
`

func natTopology(a, b string) string {
	y := strings.Replace(good, "{name: a, cidr: 192.168.1.0/24}", "{name: a, cidr: 192.168.1.0/24, routeTable: "+a+"}", 1)
	return strings.Replace(y, "{name: b, cidr: 192.168.2.0/24}", "{name: b, cidr: 192.168.2.0/24, routeTable: "+b+"}", 1) + natLab
}

func TestSubnetsRouteByTheirTablesToNATOrIGW(t *testing.T) {
	top, err := parse(t, natTopology("private", "public"))
	if err != nil {
		t.Fatal(err)
	}
	if e := top.DefaultRoute("a"); e.Kind != EgressNAT || e.NAT == nil || e.NAT.Name != "nat-a" || e.Table != "private" {
		t.Errorf("subnet a: %+v, want NAT gateway nat-a through table private", e)
	}
	if e := top.DefaultRoute("b"); e.Kind != EgressIGW {
		t.Errorf("subnet b: %+v, want the internet gateway", e)
	}
	if !strings.Contains(strings.Join(top.Objects(), " "), "nat-a") {
		t.Errorf("objects %q lack the NAT gateway's namespace", top.Objects())
	}
}

func TestSubnetWithoutTableUsesMainAndTableWithoutDefaultHasNoInternet(t *testing.T) {
	y := strings.Replace(natTopology("private", "public"), "routes: [{dst: 0.0.0.0/0, natGateway: nat-a}]", "routes: []", 1)
	top, err := parse(t, y)
	if err != nil {
		t.Fatal(err)
	}
	if e := top.DefaultRoute("a"); e.Kind != EgressNone {
		t.Errorf("a table without 0.0.0.0/0: %+v, want no internet", e)
	}
	top, err = parse(t, good+natLab)
	if err != nil {
		t.Fatal(err)
	}
	if e := top.DefaultRoute("a"); e.Kind != EgressIGW || e.Table != "" {
		t.Errorf("no route table: %+v, want the main table's internet gateway", e)
	}
}

func TestRouteTablesAndNATGatewaysAreValidated(t *testing.T) {
	ok := natTopology("private", "public")
	mustFail(t, natTopology("nope", "public"), "azs[0].subnets[0].routeTable", `unknown route table "nope"`)
	mustFail(t, strings.Replace(ok, "natGateway: nat-a}", "natGateway: nat-z}", 1), "routeTables[0].routes[0].natGateway", "nat-z")
	mustFail(t, strings.Replace(ok, "dst: 0.0.0.0/0, internetGateway: true", "dst: 10.0.0.0/8, internetGateway: true", 1),
		"routeTables[1].routes[0].dst", "default route")
	mustFail(t, strings.Replace(ok, "internetGateway: true}", "internetGateway: true, natGateway: nat-a}", 1),
		"routeTables[1].routes[0]", "exactly one target")
	mustFail(t, strings.Replace(ok, "ip: 192.168.2.20,", "ip: 192.168.1.20,", 1), "natGateways[0].ip", "outside subnet")
	mustFail(t, strings.Replace(ok, "ip: 192.168.2.20,", "ip: 192.168.2.10,", 1), "natGateways[0].ip", "already used by host c1")
	mustFail(t, strings.Replace(ok, "publicIP: 203.0.113.20", "publicIP: 52.0.0.1", 1), "natGateways[0].publicIP", "203.0.113.0/24")
	mustFail(t, strings.Replace(ok, "publicIP: 203.0.113.20", "publicIP: 203.0.113.220", 1), "natGateways[0].publicIP", "load balancer")
	mustFail(t, strings.Replace(ok, "{name: nat-a, subnet: b", "{name: c1, subnet: b", 1), "natGateways[0].name", "already used")
	mustFail(t, strings.Replace(ok, "publicIP: 203.0.113.20", `publicIP: "2001:db8::1"`, 1), "natGateways[0].publicIP", "203.0.113.0/24")
	mustFail(t, strings.Replace(ok, ", publicIP: 203.0.113.20", "", 1), "natGateways[0].publicIP", "203.0.113.0/24")
	noInternet := ok[:strings.Index(ok, "internet:")]
	mustFail(t, noInternet, "natGateways[0]", "internet gateway")
}

func TestNodeVPCCNIOverridesDecideNodeSNAT(t *testing.T) {
	y := strings.Replace(good, "  - name: n1\n", "  - name: n1\n    vpcCNI: {excludeSNATCIDRs: [198.51.100.0/24]}\n", 1)
	top, err := parse(t, y)
	if err != nil {
		t.Fatal(err)
	}
	server, other := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("8.8.8.8")
	if top.NodeSNATs("n1", server) || !top.NodeSNATs("n1", other) || top.NodeSNATs("n1", netip.MustParseAddr("192.168.2.10")) {
		t.Error("n1 must SNAT outside the VPC except to its excluded CIDR")
	}
	top.Nodes[0].VPCCNI = &VPCCNI{ExternalSNAT: true}
	if top.NodeSNATs("n1", other) {
		t.Error("external SNAT: the node SNATs nothing")
	}
	mustFail(t, strings.Replace(good, "  - name: n1\n", "  - name: n1\n    vpcCNI: {version: v1.20}\n", 1), "nodes[0].vpcCNI.version")
	mustFail(t, strings.Replace(good, "  - name: n1\n", "  - name: n1\n    vpcCNI: {excludeSNATCIDRs: [198.51.100.1/24]}\n", 1),
		"nodes[0].vpcCNI.excludeSNATCIDRs[0]")
}
