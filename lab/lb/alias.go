package lb

import (
	"fmt"
	"strings"

	"github.com/labctl/labctl/lab/spec"
)

// AliasTarget is the load balancer an alias record points at; it must be
// internet-facing, since only public IPs can be answered.
func AliasTarget(m *Model, r spec.AliasRecord) (*LoadBalancer, error) {
	ns, name, ok := strings.Cut(r.Alias, "/")
	if !ok {
		ns, name = spec.DefaultNamespace, r.Alias
	}
	for _, l := range m.LBs {
		if l.Owner == "Ingress "+ns+"/"+name || l.Owner == "Service "+ns+"/"+name {
			if l.Scheme != "internet-facing" {
				return nil, fmt.Errorf("%s's load balancer is %s; an alias answers public IPs, so it must be internet-facing", l.Owner, l.Scheme)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("no load balancer for %q", r.Alias)
}
