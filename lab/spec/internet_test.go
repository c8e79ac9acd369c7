package spec

import (
	"strings"
	"testing"
)

const internetLab = `
internet:
  hosts: [{name: server, ip: 198.51.100.10}]
  publicIPs: [{private: 192.168.1.50, public: 203.0.113.50}]
`

func TestInternetParsesAndReservesItsNames(t *testing.T) {
	top, err := parse(t, good+internetLab)
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := top.PublicIPOf(top.Nodes[0].ENIs[0].IP); !ok || pub.String() != "203.0.113.50" {
		t.Errorf("public IP of n1: %v %v", pub, ok)
	}
	objs := strings.Join(top.Objects(), " ")
	for _, want := range []string{GatewayName, InternetName, "server"} {
		if !strings.Contains(objs, want) {
			t.Errorf("objects %q lack %s", objs, want)
		}
	}
}

func TestInternetAddressesComeFromDocumentationRanges(t *testing.T) {
	mustFail(t, good+strings.Replace(internetLab, "198.51.100.10", "8.8.8.8", 1), "internet.hosts[0].ip", "198.51.100.0/24")
	mustFail(t, good+strings.Replace(internetLab, "203.0.113.50", "52.1.2.3", 1), "internet.publicIPs[0].public", "203.0.113.0/24")
	mustFail(t, good+strings.Replace(internetLab, "private: 192.168.1.50", "private: 192.168.1.77", 1),
		"internet.publicIPs[0].private", "no ENI or host address")
	mustFail(t, good+strings.Replace(internetLab, "198.51.100.10", "198.51.100.2", 1), "gateway's address")
	mustFail(t, good+strings.Replace(internetLab, "name: server", "name: igw", 1), "reserved")
}
