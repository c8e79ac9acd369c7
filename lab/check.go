package lab

import (
	"fmt"

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
	for i, w := range t.Walks {
		if w.LoadBalancer == "" && w.Kind != spec.WalkControlPlane && t.InternetHost(w.From) != nil && t.InternetHost(w.To) == nil {
			// Inbound from the internet the lab walks through a load
			// balancer only; a flow to an instance's Elastic IP would be
			// derived through hops the engine does not model.
			return nil, fmt.Errorf("%s: walks[%d] (%s): from internet host %s to %s is not modelled; walk through a load balancer (loadBalancer:) instead",
				t.File, i, w.Name, w.From, w.To)
		}
		if w.LoadBalancer == "" {
			continue
		}
		if _, _, _, _, err := walk.LBOf(t, w); err != nil {
			return nil, fmt.Errorf("%s: walk %s: %w", t.File, w.Name, err)
		}
	}
	if t.Internet != nil && t.Internet.DNS != nil {
		for _, r := range t.Internet.DNS.Records {
			if _, err := lb.AliasTarget(m, r); err != nil {
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
