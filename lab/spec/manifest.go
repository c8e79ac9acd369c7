package spec

import (
	"crypto/sha1" //nolint:gosec // names, not security
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "sigs.k8s.io/yaml"
)

// Manifests are the Kubernetes objects that follow the lab document in a
// topology file, decoded with the Kubernetes API types so a user can paste
// the YAML they run in EKS.
type Manifests struct {
	Services    []*corev1.Service
	Deployments []*appsv1.Deployment
	Pods        []*corev1.Pod
	Ingresses   []*netv1.Ingress
	// Warnings name fields the lab reads but does not model.
	Warnings []string
	lines    map[string]int // "Service default/web" -> line of its document
}

// Annotations the lab reads to place pods, since it has no scheduler and
// no IPAM daemon.
const (
	// AnnotationNodes lists the nodes a Deployment's replicas go to, in turn.
	AnnotationNodes = "labctl.dev/nodes"
	// AnnotationENI is the device index of the ENI whose secondary IPs a
	// pod (or a Deployment's pods) use. Default 0.
	AnnotationENI = "labctl.dev/eni"
	// AnnotationIP pins a Pod manifest's IP.
	AnnotationIP = "labctl.dev/ip"
)

// Port is a container port: the app server listens on it.
type Port struct {
	Name     string `yaml:"name"`
	Port     int    `yaml:"port"`
	Protocol string `yaml:"protocol"` // TCP or UDP
}

func objKey(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// decodeManifest decodes one YAML document into its typed Kubernetes object.
func (t *Topology) decodeManifest(doc []byte, line int) error {
	var tm metav1.TypeMeta
	if err := k8syaml.Unmarshal(doc, &tm); err != nil {
		return fmt.Errorf("%s:%d: %w", t.File, line, err)
	}
	strict := func(kind string, into any, meta *metav1.ObjectMeta) error {
		if err := k8syaml.UnmarshalStrict(doc, into); err != nil {
			msg := err.Error()
			for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
				msg = strings.ReplaceAll(msg, p, "")
			}
			return fmt.Errorf("%s:%d: %s: %s", t.File, line, kind, msg)
		}
		if meta.Namespace == "" {
			meta.Namespace = DefaultNamespace
		}
		key := objKey(kind, meta.Namespace, meta.Name)
		if first, dup := t.Manifests.lines[key]; dup {
			return fmt.Errorf("%s:%d: %s is defined twice (first at line %d)", t.File, line, key, first)
		}
		t.Manifests.lines[key] = line
		return nil
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Service":
		var s corev1.Service
		if err := strict("Service", &s, &s.ObjectMeta); err != nil {
			return err
		}
		t.Manifests.Services = append(t.Manifests.Services, &s)
	case "apps/v1 Deployment":
		var d appsv1.Deployment
		if err := strict("Deployment", &d, &d.ObjectMeta); err != nil {
			return err
		}
		t.Manifests.Deployments = append(t.Manifests.Deployments, &d)
	case "v1 Pod":
		var p corev1.Pod
		if err := strict("Pod", &p, &p.ObjectMeta); err != nil {
			return err
		}
		t.Manifests.Pods = append(t.Manifests.Pods, &p)
	case "networking.k8s.io/v1 Ingress":
		var in netv1.Ingress
		if err := strict("Ingress", &in, &in.ObjectMeta); err != nil {
			return err
		}
		t.Manifests.Ingresses = append(t.Manifests.Ingresses, &in)
	default:
		return fmt.Errorf("%s:%d: kind %q (apiVersion %q) is not modelled by labctl; it knows v1 Service, "+
			"v1 Pod, apps/v1 Deployment and networking.k8s.io/v1 Ingress", t.File, line, tm.Kind, tm.APIVersion)
	}
	return nil
}

// MaxReplicas bounds a Deployment's replicas; no lab node holds more pods
// (the largest modelled instance type allows 737), and a bound keeps a typo
// from expanding into millions of pods.
const MaxReplicas = 100000

// expandWorkloads turns Pod manifests and Deployment replicas into lab pods:
// placed on nodes in turn, addressed from their ENI's subnet (or its
// delegated prefixes), and named as a ReplicaSet names them, all
// deterministically. Every reference is checked here, so a bad node or ENI
// is reported against the manifest that names it.
func (t *Topology) expandWorkloads() Errors {
	v := &validator{t: t}
	alloc := newAllocator(t, t.usedAddrs())
	for _, p := range t.Manifests.Pods {
		where := objKey("Pod", p.Namespace, p.Name)
		line := t.Manifests.lines[where]
		bad := func(format string, args ...any) { v.addAt(line, where, format, args...) }
		ports, ok := v.containerPorts(line, where, p.Spec.Containers)
		pod := Pod{Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName, Labels: p.Labels,
			Ports: ports, Manifest: where}
		eni, eniOK := v.eniAnnotation(line, where, p.Annotations)
		if !ok || !eniOK {
			continue
		}
		pod.ENI = eni
		if pod.Node == "" {
			bad("spec.nodeName is required: the lab has no scheduler")
			continue
		}
		e := v.placement(line, where, "spec.nodeName", pod.Node, eni)
		if e == nil {
			continue
		}
		if ip := p.Annotations[AnnotationIP]; ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil || !a.Is4() {
				bad("annotation %s: %q is not an IPv4 address", AnnotationIP, ip)
				continue
			}
			pod.IP = a
			alloc.used[a] = true
		} else if pod.IP = alloc.take(e); !pod.IP.IsValid() {
			bad("no free address on node %s eth%d (%s)", pod.Node, eni, alloc.pool(e))
			continue
		}
		t.Pods = append(t.Pods, pod)
	}
	names := map[string]bool{}
	for _, p := range t.Pods {
		names[p.Name] = true
	}
	for _, d := range t.Manifests.Deployments {
		where := objKey("Deployment", d.Namespace, d.Name)
		line, ok := t.Manifests.lines[where]
		bad := func(format string, args ...any) { v.addAt(line, where, format, args...) }
		if !ok { // CoreDNS, which labctl adds: point at the setting
			bad = func(format string, args ...any) {
				v.add("clusterDNS", where+" (EKS's CoreDNS, added when the file has manifests): "+format, args...)
			}
		}
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		if replicas < 0 || replicas > MaxReplicas {
			bad("spec.replicas: %d is outside 0..%d", replicas, MaxReplicas)
			continue
		}
		if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			bad("spec.selector.matchLabels must select the template's labels")
			continue
		}
		ports, portsOK := v.containerPorts(line, where, d.Spec.Template.Spec.Containers)
		eni, eniOK := v.eniAnnotation(line, where, d.Annotations)
		if !portsOK || !eniOK {
			continue
		}
		field, nodes := "nodes", t.nodeNames()
		if s, ok := d.Annotations[AnnotationNodes]; ok {
			field, nodes = "annotation "+AnnotationNodes, strings.Split(s, ",")
		}
		if len(nodes) == 0 {
			if replicas > 0 {
				bad("the topology has no nodes to place %d replicas on", replicas)
			}
			continue
		}
		enis := make([]*ENI, len(nodes))
		for i, n := range nodes {
			if enis[i] = v.placement(line, where, field, strings.TrimSpace(n), eni); enis[i] == nil {
				enis = nil
				break
			}
			nodes[i] = strings.TrimSpace(n)
		}
		if enis == nil {
			continue
		}
		for i, j := 0, 0; i < replicas; i, j = i+1, j+1 {
			// A ReplicaSet retries a pod name that is taken; so does the
			// lab, with the next suffix (5 characters collide at scale).
			for names[ReplicaName(d.Namespace, d.Name, j)] {
				j++
			}
			k := i % len(nodes)
			pod := Pod{Name: ReplicaName(d.Namespace, d.Name, j), Namespace: d.Namespace, Node: nodes[k],
				ENI: eni, Labels: d.Spec.Template.Labels, Ports: ports, Manifest: where}
			if pod.IP = alloc.take(enis[k]); !pod.IP.IsValid() {
				bad("no free address on node %s eth%d for replica %d (%s)", pod.Node, eni, i, alloc.pool(enis[k]))
				break
			}
			names[pod.Name] = true
			t.Pods = append(t.Pods, pod)
		}
	}
	return v.errs
}

// eniAnnotation reads labctl.dev/eni: a device index, 0 when absent.
func (v *validator) eniAnnotation(line int, where string, annotations map[string]string) (int, bool) {
	s, ok := annotations[AnnotationENI]
	if !ok {
		return 0, true
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 31 {
		v.addAt(line, where, "annotation %s: %q is not an ENI device index (0..31)", AnnotationENI, s)
		return 0, false
	}
	return n, true
}

// placement checks that a manifest's node exists and has the ENI.
func (v *validator) placement(line int, where, field, node string, eni int) *ENI {
	n := v.t.Node(node)
	if n == nil {
		v.addAt(line, where, "%s: unknown node %q", field, node)
		return nil
	}
	e := n.ENI(eni)
	if e == nil {
		v.addAt(line, where, "node %s has no ENI with device index %d (annotation %s)", node, eni, AnnotationENI)
		return nil
	}
	if _, ok := v.t.Subnet(e.Subnet); !ok {
		return nil // reported by Validate against the ENI
	}
	return e
}

// containerPorts collects the ports the app listens on, checking each as
// the API server does, so a bad one fails here and not in iptables-restore.
func (v *validator) containerPorts(line int, where string, cs []corev1.Container) ([]Port, bool) {
	var out []Port
	ok := true
	for i, c := range cs {
		for j, p := range c.Ports {
			field := fmt.Sprintf("containers[%d].ports[%d]", i, j)
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				v.addAt(line, where, "%s.containerPort: %d is outside 1..65535", field, p.ContainerPort)
				ok = false
			}
			if proto != "TCP" && proto != "UDP" {
				v.addAt(line, where, "%s.protocol: %s is not modelled (TCP and UDP are)", field, proto)
				ok = false
			}
			out = append(out, Port{Name: p.Name, Port: int(p.ContainerPort), Protocol: proto})
		}
	}
	return out, ok
}

// ReplicaName names replica i of a Deployment like a ReplicaSet does:
// <deployment>-<10-character template hash>-<5-character suffix>.
func ReplicaName(namespace, deployment string, i int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"                           // k8s.io/apimachinery rand's alphabet
	h := sha1.Sum([]byte(namespace + "/" + deployment))                      //nolint:gosec
	s := sha1.Sum([]byte(fmt.Sprintf("%s/%s/%d", namespace, deployment, i))) //nolint:gosec
	var hash, suffix strings.Builder
	for j := 0; j < 10; j++ {
		hash.WriteByte(alphabet[int(h[j])%len(alphabet)])
	}
	for j := 0; j < 5; j++ {
		suffix.WriteByte(alphabet[int(s[j])%len(alphabet)])
	}
	return deployment + "-" + hash.String() + "-" + suffix.String()
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Selects reports whether a Service selector picks a pod's labels.
func Selects(selector, labels map[string]string) bool { return selects(selector, labels) }

func (t *Topology) nodeNames() []string {
	out := make([]string, len(t.Nodes))
	for i, n := range t.Nodes {
		out[i] = n.Name
	}
	return out
}

// UsedAddrs is every address the topology assigns to ENIs, pods and hosts,
// and every address of a delegated /28: EC2 hands none of them to another
// ENI, such as a load balancer's.
func (t *Topology) UsedAddrs() map[netip.Addr]bool {
	used := t.usedAddrs()
	for _, n := range t.Nodes {
		for _, e := range n.ENIs {
			for _, p := range e.Prefixes {
				if !p.IsValid() || !p.Addr().Is4() || p.Bits() < 28 {
					continue // not a /28; Validate rejects it
				}
				for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
					used[a] = true
				}
			}
		}
	}
	return used
}

// usedAddrs is every address the lab document assigns.
func (t *Topology) usedAddrs() map[netip.Addr]bool {
	used := t.instanceAddrs()
	for _, p := range t.Pods {
		used[p.IP] = true
	}
	return used
}

// instanceAddrs are the instances' addresses: every ENI's, its secondary
// IPs, and the hosts'.
func (t *Topology) instanceAddrs() map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, n := range t.Nodes {
		for _, e := range n.ENIs {
			used[e.IP] = true
			for _, a := range e.SecondaryIPs {
				used[a] = true
			}
		}
	}
	for _, h := range t.Hosts {
		used[h.IP] = true
	}
	if t.ControlPlane != nil {
		for _, x := range t.ControlPlane.XENIs {
			used[x.IP] = true
		}
	}
	return used
}

// nextFree is the address ipamd would hand the next pod on a node's ENI,
// or the zero Addr.
func (t *Topology) nextFree(node string, eni int, used map[netip.Addr]bool) netip.Addr {
	n := t.Node(node)
	if n == nil || n.ENI(eni) == nil {
		return netip.Addr{}
	}
	return newAllocator(t, used).take(n.ENI(eni))
}

// addClusterDNS adds EKS's CoreDNS: the kube-dns Service on the service
// CIDR's .10 and a coredns Deployment with two replicas.
func (t *Topology) addClusterDNS() {
	ip := t.VPC.ServiceCIDR.Masked().Addr()
	for i := 0; i < 10; i++ {
		ip = ip.Next()
	}
	labels := map[string]string{"k8s-app": "kube-dns"}
	ports := []corev1.ContainerPort{{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP}}
	two := int32(2)
	// Prepended, so a user's object that collides with CoreDNS is the one
	// named in the error.
	t.Manifests.Deployments = append([]*appsv1.Deployment{{
		ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "coredns", Ports: ports}}}}},
	}}, t.Manifests.Deployments...)
	t.Manifests.Services = append([]*corev1.Service{{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system"},
		Spec: corev1.ServiceSpec{ClusterIP: ip.String(), Selector: labels, Ports: []corev1.ServicePort{
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
			{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns-tcp")}}},
	}}, t.Manifests.Services...)
}

// ClusterDNSIP is the kube-dns Service's address, .10 of the service CIDR.
func (t *Topology) ClusterDNSIP() netip.Addr {
	ip := t.VPC.ServiceCIDR.Masked().Addr()
	for i := 0; i < 10; i++ {
		ip = ip.Next()
	}
	return ip
}

// noFreeNodePort marks a NodePort labctl could not allocate.
const noFreeNodePort = -1

// allocateServiceAddrs gives Services without a ClusterIP or NodePort one,
// deterministically: ClusterIPs from the service CIDR's .100 upward, NodePorts
// from 30000 upward, health check NodePorts for LoadBalancer Services with
// externalTrafficPolicy Local, all in file order.
func (t *Topology) allocateServiceAddrs() {
	usedIP := map[string]bool{}
	usedPort := map[int32]bool{}
	for _, s := range t.Manifests.Services {
		usedIP[s.Spec.ClusterIP] = true
		for _, p := range s.Spec.Ports {
			usedPort[p.NodePort] = true
		}
		usedPort[s.Spec.HealthCheckNodePort] = true
	}
	nextIP := t.VPC.ServiceCIDR.Masked().Addr()
	for i := 0; i < 100; i++ {
		nextIP = nextIP.Next()
	}
	nextPort := int32(30000)
	// port returns the next free NodePort, or noFreeNodePort once the
	// range is used up, which Validate reports.
	port := func() int32 {
		for usedPort[nextPort] && nextPort <= NodePortMax {
			nextPort++
		}
		if nextPort > NodePortMax {
			return noFreeNodePort
		}
		usedPort[nextPort] = true
		return nextPort
	}
	for _, s := range t.Manifests.Services {
		if s.Spec.Type == "" {
			s.Spec.Type = corev1.ServiceTypeClusterIP
		}
		if s.Spec.ClusterIP == "" {
			for usedIP[nextIP.String()] && t.VPC.ServiceCIDR.Contains(nextIP) {
				nextIP = nextIP.Next()
			}
			if t.VPC.ServiceCIDR.Contains(nextIP) { // else left empty; Validate says the CIDR is full
				s.Spec.ClusterIP = nextIP.String()
				usedIP[s.Spec.ClusterIP] = true
			}
		}
		external := s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
		for i := range s.Spec.Ports {
			p := &s.Spec.Ports[i]
			if p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
			if p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" {
				p.TargetPort = intstr.FromInt32(p.Port)
			}
			if external && p.NodePort == 0 {
				p.NodePort = port()
			}
		}
		if external && s.Spec.ExternalTrafficPolicy == "" {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
			s.Spec.HealthCheckNodePort == 0 {
			s.Spec.HealthCheckNodePort = port()
		}
	}
}

// ManifestLine is the line of an object's document, for messages.
func (t *Topology) ManifestLine(kind, namespace, name string) int {
	return t.Manifests.lines[objKey(kind, namespace, name)]
}

// ServiceLine is the line of a Service's document, for messages.
func (t *Topology) ServiceLine(s *corev1.Service) int {
	return t.Manifests.lines[objKey("Service", s.Namespace, s.Name)]
}
