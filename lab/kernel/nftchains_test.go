package kernel

import (
	"reflect"
	"testing"
)

// A chain the kernel still holds after a sync that kube-proxy's state no
// longer has (a crash between a sync and its cleanup) is found; base
// chains and wanted chains are not.
func TestNFTLeftoverChainsAreKubeProxyServiceChainsNoLongerRendered(t *testing.T) {
	listing := `table ip kube-proxy {
	comment "rules for kube-proxy"
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80 {
		ip saddr 192.168.1.7 jump mark-for-masquerade
	}
	chain endpoint-HF4ASHDN-default/web/tcp/http__192.168.1.6/80 {
	}
	chain service-SUSTUHLJ-default/web/tcp/http {
	}
}
`
	script := "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n" +
		"add chain ip kube-proxy services\n" +
		"add chain ip kube-proxy service-SUSTUHLJ-default/web/tcp/http\n" +
		"add chain ip kube-proxy endpoint-YJFZSBHB-default/web/tcp/http__192.168.1.7/80\n"
	got := nftLeftoverChains(nftTableChains(listing), nftScriptChains(script, "kube-proxy"))
	want := []string{"endpoint-HF4ASHDN-default/web/tcp/http__192.168.1.6/80"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leftovers %q, want %q", got, want)
	}
	if tx := nftDeleteChains("kube-proxy", got); tx != "flush chain ip kube-proxy "+want[0]+"\ndelete chain ip kube-proxy "+want[0]+"\n" {
		t.Errorf("delete transaction:\n%s", tx)
	}
}
