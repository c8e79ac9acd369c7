package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/lab"
	"github.com/labctl/labctl/lab/agent"
	"github.com/labctl/labctl/lab/ns"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

func newStatus() *cobra.Command {
	var lf labFlag
	var o outputFlag
	c := &cobra.Command{
		Use:               "status [--lab L] [object...]",
		Short:             "Show a lab's namespaces, interfaces and addresses, read from the kernel",
		ValidArgsFunction: completeObjects(&lf, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			l, err := lf.resolve()
			if err != nil {
				return err
			}
			st, err := lab.ReadState(l)
			if err != nil {
				return err
			}
			if err := knownObjects(l, st, args); err != nil {
				return err
			}
			if o.machine() {
				return o.print(cmd.OutOrStdout(), labStatus(l, st, args))
			}
			if len(args) == 0 {
				printLabHeader(cmd.OutOrStdout(), l, st)
				tidyTraces(cmd.OutOrStdout(), l, st)
			}
			// The table is the -o json document, read from the kernel once.
			return writeStatusTable(cmd.OutOrStdout(), labStatus(l, st, args))
		},
	}
	lf.register(c.Flags())
	o.register(c)
	return c
}

// writeStatusTable prints the status document as a table, every line
// ended, so whatever a shell prints after it (time's line on stderr)
// starts a line of its own.
func writeStatusTable(w io.Writer, doc LabStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OBJECT\tNAMESPACE\tINTERFACE\tSTATE\tMAC\tMTU\tADDRESSES")
	for _, oi := range doc.Objects {
		if oi.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t(missing: %v)\t\t\t\t\n", oi.Object, oi.Namespace, oi.Error)
			continue
		}
		master := ""
		if oi.Master != "" {
			master = " (port of " + oi.Master + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s%s\n", oi.Object, oi.Namespace, oi.Interface, oi.State,
			oi.MAC, oi.MTU, strings.Join(oi.Addresses, " "), master)
	}
	return tw.Flush()
}

// labStatus is status -o json|yaml: the header's facts and every
// interface of the objects asked for (all of them if none).
func labStatus(l string, st *lab.State, objects []string) LabStatus {
	backend := st.Iptables
	if backend == "" {
		backend = spec.IptablesNFT
	}
	doc := LabStatus{TypeMeta: meta("LabStatus"), Lab: l, Complete: st.Complete, Iptables: backend,
		KubeProxy: KubeProxyStatus{Mode: kubeProxyMode(st)},
		AppServer: AppServer{PID: st.AgentPID, Running: st.AgentPID > 0 && agent.Running(l, st.AgentPID), Log: state.AgentLog(l)},
		Objects:   []ObjectInterface{}}
	if t, _, err := lab.Load(l); err == nil {
		doc.VPCCNI = vpcCNIStatus(t.VPCCNI.Version, backend)
	}
	want := map[string]bool{}
	for _, a := range objects {
		want[a] = true
	}
	for _, name := range st.Namespaces {
		obj := name[len("lc.")+len(l)+1:]
		if len(want) > 0 && !want[obj] {
			continue
		}
		n, err := ns.Open(name)
		if err != nil {
			doc.Objects = append(doc.Objects, ObjectInterface{Object: obj, Namespace: name, Error: err.Error()})
			continue
		}
		links, _ := n.NL.LinkList()
		for _, lk := range links {
			a := lk.Attrs()
			if a.Name == "lo" {
				continue
			}
			oi := ObjectInterface{Object: obj, Namespace: name, Interface: a.Name, State: operState(lk),
				MAC: a.HardwareAddr.String(), MTU: a.MTU, Addresses: []string{}}
			addrs, _ := n.NL.AddrList(lk, unix.AF_INET)
			for _, ad := range addrs {
				oi.Addresses = append(oi.Addresses, ad.IPNet.String())
			}
			if a.MasterIndex != 0 {
				if m, err := n.NL.LinkByIndex(a.MasterIndex); err == nil {
					oi.Master = m.Attrs().Name
				}
			}
			doc.Objects = append(doc.Objects, oi)
		}
		n.Close()
	}
	return doc
}

// knownObjects refuses an object the lab does not have, rather than print
// an empty table.
func knownObjects(l string, st *lab.State, objects []string) error {
	have := map[string]bool{}
	var names []string
	for _, n := range st.Namespaces {
		obj := n[len(spec.NSPrefix)+len(l)+1:]
		have[obj] = true
		names = append(names, obj)
	}
	for _, o := range objects {
		if !have[o] {
			return fmt.Errorf("lab %s has no object %q (it has: %s)", l, o, strings.Join(names, ", "))
		}
	}
	return nil
}

// completeObjects completes the objects (namespaces) of the lab the
// command would act on.
// With one set, the arguments after the object are a command (exec).
func completeObjects(lf *labFlag, one bool) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if one && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		l, err := resolveLab(lf.name)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		st, err := lab.ReadState(l)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, name := range st.Namespaces {
			out = append(out, name[len(spec.NSPrefix)+len(l)+1:])
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func operState(l netlink.Link) string {
	if l.Attrs().Flags&unix.IFF_UP == 0 {
		return "down"
	}
	return l.Attrs().OperState.String()
}

// printLabHeader says whether the lab is complete, its iptables backend,
// and whether its app server still runs (walks need it).
func printLabHeader(w io.Writer, l string, st *lab.State) {
	shape := "up"
	if !st.Complete {
		shape = "incomplete (an up was interrupted; labctl down " + l + " removes it)"
	}
	backend := st.Iptables
	if backend == "" {
		backend = spec.IptablesNFT
	}
	apps := "not started (up --no-apps)"
	switch {
	case agent.Running(l, st.AgentPID):
		apps = fmt.Sprintf("running, pid %d, log %s", st.AgentPID, state.AgentLog(l))
	case st.AgentPID > 0:
		apps = fmt.Sprintf("NOT running (was pid %d); walks that need the pods' apps will fail; see %s", st.AgentPID, state.AgentLog(l))
	}
	if st.AgentPID > 0 && !agent.Running(l, st.AgentPID) {
		apps += "; sudo " + self() + " up --resume " + l + " starts it again"
	}
	cni := ""
	if t, _, err := lab.Load(l); err == nil {
		c := vpcCNIStatus(t.VPCCNI.Version, backend)
		cni = fmt.Sprintf("; VPC CNI %s (SNAT and mangle in %s, connmark in %s)", c.Version, c.Iptables, c.Connmark)
	}
	fmt.Fprintf(w, "lab %s: %s; iptables %s; kube-proxy %s%s; app server %s\n", l, shape, backend, kubeProxyMode(st), cni, apps)
	if pd := st.Churn.Pending; pd != nil {
		fmt.Fprintf(w, "pod delete pending: %s (%s) is being replaced by %s (%s); it stopped after step %q; "+
			"sudo %s pod delete --lab %s %s finishes it\n", pd.Deleted.Name, pd.Deleted.IP, pd.Started.Name, pd.Started.IP, pd.Step, self(), l, pd.Deleted.Name)
	}
	fmt.Fprintln(w)
}

// tidyTraces removes the TRACE rules and monitors of a walk --explain that
// was killed, and says so.
func tidyTraces(w io.Writer, l string, st *lab.State) {
	if !st.Complete {
		return
	}
	s, err := lab.OpenSession(l)
	if err != nil {
		return
	}
	defer s.Close()
	cleaned, err := s.ClearStaleTraces()
	if len(cleaned) > 0 {
		fmt.Fprintf(w, "removed the TRACE rules of a walk --explain that did not finish, in %s\n\n", strings.Join(cleaned, ", "))
	}
	if err != nil {
		fmt.Fprintf(w, "could not check for leftover TRACE rules: %v\n\n", err)
	}
}

// kubeProxyMode is the lab's kube-proxy mode; labs from before the field
// ran iptables mode.
func kubeProxyMode(st *lab.State) string {
	if st.KubeProxyMode == "" {
		return spec.KubeProxyIPTables
	}
	return st.KubeProxyMode
}

// vpcCNIStatus names where aws-node of a version keeps its rules on nodes
// with the given iptables backend (spec.VPCCNIConnmark).
func vpcCNIStatus(version, backend string) VPCCNIStatus {
	ipt := spec.ConnmarkIptablesNFT
	if backend == spec.IptablesLegacy {
		ipt = spec.ConnmarkIptablesLegacy
	}
	return VPCCNIStatus{Version: version, Iptables: ipt, Connmark: spec.VPCCNIConnmark(version, backend)}
}
