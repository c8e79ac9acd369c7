package lab

import (
	"fmt"
	"strings"

	"github.com/labctl/labctl/lab/lb"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/walk"
)

// Check is the validation a topology needs beyond its own file: the load
// balancers its Services and Ingresses ask for, decided as their controllers
// would. It returns the warnings to show (fields not modelled, Services that
// stay pending) or the first error, before anything is created.
func Check(t *spec.Topology) ([]string, error) {
	m, err := lb.Build(t)
	if err != nil {
		return nil, err
	}
	for _, w := range t.Walks {
		if w.LoadBalancer == "" {
			continue
		}
		if _, _, _, _, err := walk.LBOf(t, w); err != nil {
			return nil, fmt.Errorf("%s: walk %s: %w", t.File, w.Name, err)
		}
	}
	if t.Internet != nil && t.Internet.DNS != nil {
		for _, r := range t.Internet.DNS.Records {
			if _, err := AliasTarget(m, r); err != nil {
				return nil, fmt.Errorf("%s: internet.dns record %s: %w", t.File, r.Name, err)
			}
		}
	}
	warnings := append([]string(nil), t.Manifests.Warnings...)
	for _, p := range m.Pending {
		warnings = append(warnings, p.Owner+": no load balancer: "+p.Reason)
	}
	return warnings, nil
}

// AliasTarget is the load balancer an alias record points at; it must be
// internet-facing, since only public IPs can be answered.
func AliasTarget(m *lb.Model, r spec.AliasRecord) (*lb.LoadBalancer, error) {
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
