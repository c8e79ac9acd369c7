//go:build linux

package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab/internal/crash"
	"github.com/labctl/labctl/lab/netfilter"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/plan"
	"github.com/labctl/labctl/lab/spec"
)

// StartPod creates one pod in a running lab, as the VPC CNI's ADD would.
func StartPod(t *spec.Topology, lab, pod string, nf netfilter.Backend) error {
	podNS, veth, nodePart := plan.PodPlan(t, lab, pod)
	p, err := ns.Create(podNS.Name)
	if err != nil {
		return err
	}
	defer p.Close()
	node, err := ns.Open(nodePart.Name)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := addVeth(p, node, veth); err != nil {
		return err
	}
	// Fault points inside the CNI's ADD: a half-made replacement (a veth
	// without addresses; a pod side without the node's routes and rules)
	// that a resumed delete must clear before starting it again.
	crash.Point(context.Background(), "pod-start-veth")
	if err := Configure(p, podNS, nf); err != nil {
		return err
	}
	crash.Point(context.Background(), "pod-start-pod")
	return Configure(node, nodePart, nf)
}

// StopPod removes a pod's namespace and what the VPC CNI's DEL removes on
// the node: rules 512 and 1536 and the ENI's proxy entry (the /32 route
// goes with the veth). What is already gone is skipped, so it also clears
// a half-made pod.
func StopPod(lab string, pod spec.Pod) error {
	name := spec.NSName(lab, pod.Name)
	KillInNamespaces([]string{name})
	node, err := ns.Open(spec.NSName(lab, pod.Node))
	if err != nil {
		return err
	}
	defer node.Close()
	// Delete the host side of the veth now, as the CNI's DEL does: the
	// kernel frees an unmounted namespace, and the veth with it, only
	// later, and a pod of the same name started meanwhile (a resumed
	// delete) would find the name taken.
	veth := spec.HostVethName(pod.Namespace, pod.Name)
	switch l, err := node.NL.LinkByName(veth); {
	case err == nil:
		if err := node.NL.LinkDel(l); err != nil {
			return fmt.Errorf("ip link del %s in %s: %w", veth, node.Name, err)
		}
	case !errors.As(err, &netlink.LinkNotFoundError{}):
		return fmt.Errorf("ip link show %s in %s: %w", veth, node.Name, err)
	}
	if err := ns.Delete(name); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(EtcNetns, name))
	host := &net.IPNet{IP: pod.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}
	rules, err := node.NL.RuleList(unix.AF_INET)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if (r.Priority == 512 && r.Dst != nil && r.Dst.String() == host.String()) ||
			(r.Priority == 1536 && r.Src != nil && r.Src.String() == host.String()) {
			r := r
			if err := node.NL.RuleDel(&r); err != nil {
				return fmt.Errorf("ip rule del %d in %s: %w", r.Priority, node.Name, err)
			}
		}
	}
	eni, err := node.NL.LinkByName(spec.ENIName(pod.ENI))
	if err != nil {
		return err
	}
	err = node.NL.NeighDel(&netlink.Neigh{LinkIndex: eni.Attrs().Index, Family: unix.AF_INET, Flags: netlink.NTF_PROXY,
		IP: pod.IP.AsSlice()})
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("ip neigh del proxy %s in %s: %w", pod.IP, node.Name, err)
	}
	return nil
}
