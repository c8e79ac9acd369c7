package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a topology file: the largest shipped one is a few KiB,
// and a bound keeps /dev/zero or a runaway file from exhausting memory.
const MaxFileSize = 4 << 20

// Load reads, strictly parses and validates a topology file. An unknown key,
// a malformed address or a semantic problem is an error that names the file
// and the line.
func Load(path string) (*Topology, error) {
	data, err := readTopology(path)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return Parse(path, base, data)
}

// readTopology reads a regular file of at most MaxFileSize bytes. It checks
// the type before opening (a FIFO would block open), opens non-blocking in
// case the path was swapped meanwhile, and checks the opened file again.
func readTopology(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading topology %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading topology %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("reading topology %s: %d bytes, larger than the %d-byte (4 MiB) limit", path, fi.Size(), MaxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading topology: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("reading topology %s: larger than the %d-byte (4 MiB) limit", path, MaxFileSize)
	}
	return data, nil
}

// Parse is Load for bytes already read; file names the source in errors and
// defaultName is the lab name used when the topology sets none.
func Parse(file, defaultName string, data []byte) (*Topology, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, larger than the %d-byte (4 MiB) limit", file, len(data), MaxFileSize)
	}
	t, err := decode(file, data)
	if err != nil {
		return nil, err
	}
	if t.Name == "" {
		t.Name = defaultName
	}
	t.Source = data
	t.applyDefaults()
	if errs := t.expandWorkloads(); len(errs) > 0 {
		return nil, errs
	}
	if errs := t.Validate(); len(errs) > 0 {
		return nil, errs
	}
	return t, nil
}

func decode(file string, data []byte) (*Topology, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, cleanYAMLErr(err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	t := &Topology{File: file}
	if err := dec.Decode(t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the file is empty", file)
		}
		return nil, fmt.Errorf("%s%s: %w", file, locateValue(&root, err), cleanYAMLErr(err))
	}
	t.Manifests.lines = map[string]int{}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, cleanYAMLErr(err))
		}
		if len(doc.Content) == 0 || isNull(doc.Content[0]) {
			continue // an empty document between two "---"
		}
		if k := doc.Content[0]; k.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: a Kubernetes manifest must be a mapping (apiVersion, kind, ...), not %s",
				file, k.Line, kindName(k.Kind))
		}
		raw, err := yaml.Marshal(doc.Content[0])
		if err != nil {
			return nil, err
		}
		if err := t.decodeManifest(raw, doc.Content[0].Line); err != nil {
			return nil, err
		}
	}
	t.lines = map[string]int{}
	if len(root.Content) > 0 {
		indexLines(root.Content[0], "", t.lines)
	}
	return t, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// cleanYAMLErr turns yaml.v3's "yaml: unmarshal errors:\n  line 3: ..." into
// one readable line per problem.
func cleanYAMLErr(err error) error {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n")
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return errors.New(strings.Join(lines, "; "))
}

// locateValue finds the line and path of a scalar a parse error quotes,
// because yaml.v3 reports no line for errors from a type's UnmarshalText
// (such as a malformed address): it returns ":LINE: PATH" or "".
func locateValue(root *yaml.Node, err error) string {
	msg := err.Error()
	i, j := strings.IndexByte(msg, '"'), strings.LastIndexByte(msg, '"')
	if strings.Contains(msg, "line ") || i < 0 || j <= i+1 || len(root.Content) == 0 {
		return ""
	}
	bad := msg[i+1 : j]
	var find func(n *yaml.Node, path string) string
	find = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.ScalarNode:
			if n.Value == bad {
				return fmt.Sprintf(":%d: %s", n.Line, path)
			}
		case yaml.MappingNode:
			for k := 0; k+1 < len(n.Content); k += 2 {
				p := n.Content[k].Value
				if path != "" {
					p = path + "." + p
				}
				if r := find(n.Content[k+1], p); r != "" {
					return r
				}
			}
		case yaml.SequenceNode:
			for k, c := range n.Content {
				if r := find(c, path+"["+strconv.Itoa(k)+"]"); r != "" {
					return r
				}
			}
		}
		return ""
	}
	return find(root.Content[0], "")
}

// indexLines records the line of every mapping value and sequence item
// under its path, so validation errors can point at the line.
func indexLines(n *yaml.Node, path string, out map[string]int) {
	out[path] = n.Line
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			out[p] = n.Content[i].Line
			indexLines(n.Content[i+1], p, out)
			out[p] = n.Content[i].Line
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			indexLines(c, path+"["+strconv.Itoa(i)+"]", out)
		}
	}
}

// Line returns the line of the YAML path, or of its nearest parent that has
// one, or 0 when the topology was not parsed from YAML.
func (t *Topology) Line(path string) int {
	for p := path; p != ""; {
		if l, ok := t.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

func (t *Topology) applyDefaults() {
	if t.Iptables == "" {
		t.Iptables = IptablesNFT
	}
	if t.KubeProxy.Mode == "" {
		t.KubeProxy.Mode = KubeProxyIPTables
	}
	if t.VPCCNI.Version == "" {
		t.VPCCNI.Version = DefaultVPCCNIVersion
	}
	if t.VPC.MTU == 0 {
		t.VPC.MTU = DefaultMTU
	}
	if !t.VPC.ServiceCIDR.IsValid() {
		t.VPC.ServiceCIDR = DefaultServiceCIDR(t.VPC.CIDR)
	}
	for i := range t.AZs {
		for j := range t.AZs[i].Subnets {
			t.AZs[i].Subnets[j].AZ = t.AZs[i].Name
		}
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.InstanceType == "" {
			n.InstanceType = DefaultInstanceType
		}
		for j := range n.ENIs {
			if n.ENIs[j].Index == nil {
				idx := j
				n.ENIs[j].Index = &idx
			}
		}
	}
	if in := t.Internet; in != nil && in.DNS != nil {
		// The DNS server is an internet host of its own.
		in.Hosts = append(in.Hosts, InternetHost{Name: in.DNS.Name, IP: in.DNS.IP})
	}
	m := &t.Manifests
	if len(m.Services)+len(m.Deployments)+len(m.Pods)+len(m.Ingresses) > 0 && (t.ClusterDNS == nil || *t.ClusterDNS) {
		t.addClusterDNS()
	}
	t.allocateServiceAddrs()
	for i := range t.Pods {
		if t.Pods[i].Namespace == "" {
			t.Pods[i].Namespace = DefaultNamespace
		}
		for j := range t.Pods[i].Ports {
			if t.Pods[i].Ports[j].Protocol == "" {
				t.Pods[i].Ports[j].Protocol = "TCP" // as a container port defaults
			}
		}
	}
	for i := range t.Walks {
		w := &t.Walks[i]
		if w.Kind == "" {
			w.Kind = WalkFlow
		}
		switch {
		case w.Kind == WalkDNS:
			w.Protocol, w.Port = "udp", 53
		case w.Kind == WalkSpread || w.Kind == WalkChurn:
			if w.Port == 0 && w.LoadBalancer != "" {
				w.Port = 80
			}
			if w.Protocol == "" {
				w.Protocol = "tcp"
			}
			if w.Connections == 0 {
				w.Connections = 60
			}
		case w.Protocol == "" && (w.Service != "" || w.LoadBalancer != ""):
			w.Protocol = "tcp"
		case w.Protocol == "":
			w.Protocol = "icmp"
		}
		if w.Expect == "" {
			w.Expect = "answer"
		}
		if w.Port == 0 && w.LoadBalancer != "" && w.Path != "" {
			w.Port = 80 // an ALB's listener
		}
		if w.Port == 0 {
			switch w.Protocol {
			case "tcp":
				w.Port = AppTCPPort
			case "udp":
				w.Port = AppUDPPort
			}
		}
	}
}
