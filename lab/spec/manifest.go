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
		t.Manifests.lines[objKey(kind, meta.Namespace, meta.Name)] = line
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

// expandWorkloads turns Pod manifests and Deployment replicas into lab pods:
// placed on nodes in turn, addressed from their ENI's subnet, and named as
// a ReplicaSet names them, all deterministically.
func (t *Topology) expandWorkloads() Errors {
	v := &validator{t: t}
	used := t.usedAddrs()
	for _, p := range t.Manifests.Pods {
		where := objKey("Pod", p.Namespace, p.Name)
		pod := Pod{Name: p.Name, Namespace: p.Namespace, Node: p.Spec.NodeName, Labels: p.Labels,
			Ports: containerPorts(p.Spec.Containers), Manifest: where}
		if pod.Node == "" {
			v.addAt(t.Manifests.lines[where], where, "spec.nodeName is required: the lab has no scheduler")
			continue
		}
		pod.ENI, _ = strconv.Atoi(p.Annotations[AnnotationENI])
		if ip := p.Annotations[AnnotationIP]; ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				v.addAt(t.Manifests.lines[where], where, "annotation %s: %v", AnnotationIP, err)
				continue
			}
			pod.IP = a
		} else if pod.IP = t.nextFree(pod.Node, pod.ENI, used); !pod.IP.IsValid() {
			v.addAt(t.Manifests.lines[where], where, "no free address on node %s eth%d", pod.Node, pod.ENI)
			continue
		}
		used[pod.IP] = true
		t.Pods = append(t.Pods, pod)
	}
	for _, d := range t.Manifests.Deployments {
		where := objKey("Deployment", d.Namespace, d.Name)
		line := t.Manifests.lines[where]
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			v.addAt(line, where, "spec.selector.matchLabels must select the template's labels")
			continue
		}
		nodes := t.nodeNames()
		if s := d.Annotations[AnnotationNodes]; s != "" {
			nodes = strings.Split(s, ",")
		}
		eni, _ := strconv.Atoi(d.Annotations[AnnotationENI])
		for i := 0; i < replicas; i++ {
			pod := Pod{Name: ReplicaName(d.Namespace, d.Name, i), Namespace: d.Namespace, Node: nodes[i%len(nodes)],
				ENI: eni, Labels: d.Spec.Template.Labels, Ports: containerPorts(d.Spec.Template.Spec.Containers),
				Manifest: where}
			if pod.IP = t.nextFree(pod.Node, eni, used); !pod.IP.IsValid() {
				v.addAt(line, where, "no free address on node %s eth%d for replica %d", pod.Node, eni, i)
				break
			}
			used[pod.IP] = true
			t.Pods = append(t.Pods, pod)
		}
	}
	return v.errs
}

func containerPorts(cs []corev1.Container) []Port {
	var out []Port
	for _, c := range cs {
		for _, p := range c.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			out = append(out, Port{Name: p.Name, Port: int(p.ContainerPort), Protocol: proto})
		}
	}
	return out
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

// UsedAddrs is every address the topology assigns to ENIs, pods and hosts.
func (t *Topology) UsedAddrs() map[netip.Addr]bool { return t.usedAddrs() }

// usedAddrs is every address the lab document assigns.
func (t *Topology) usedAddrs() map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, n := range t.Nodes {
		for _, e := range n.ENIs {
			used[e.IP] = true
			for _, a := range e.SecondaryIPs {
				used[a] = true
			}
		}
	}
	for _, p := range t.Pods {
		used[p.IP] = true
	}
	for _, h := range t.Hosts {
		used[h.IP] = true
	}
	return used
}

// nextFree is the lowest free, non-reserved address of a node's ENI subnet,
// as ipamd would hand out a warm secondary IP.
func (t *Topology) nextFree(node string, eni int, used map[netip.Addr]bool) netip.Addr {
	n := t.Node(node)
	if n == nil || n.ENI(eni) == nil {
		return netip.Addr{}
	}
	s, ok := t.Subnet(n.ENI(eni).Subnet)
	if !ok {
		return netip.Addr{}
	}
	// With prefix delegation ipamd hands out /32s of the ENI's prefixes.
	for _, pf := range n.ENI(eni).Prefixes {
		for a := pf.Masked().Addr(); pf.Contains(a); a = a.Next() {
			if !used[a] && !Reserved(s.CIDR, a) {
				return a
			}
		}
	}
	if len(n.ENI(eni).Prefixes) > 0 {
		return netip.Addr{}
	}
	lbs := map[netip.Addr]bool{} // load balancer nodes' (LBAddrs)
	for _, a := range t.LBAddrs(s) {
		lbs[a] = true
	}
	for a := s.CIDR.Masked().Addr(); s.CIDR.Contains(a); a = a.Next() {
		if !used[a] && !lbs[a] && !Reserved(s.CIDR, a) {
			return a
		}
	}
	return netip.Addr{}
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
	port := func() int32 {
		for usedPort[nextPort] {
			nextPort++
		}
		usedPort[nextPort] = true
		return nextPort
	}
	for _, s := range t.Manifests.Services {
		if s.Spec.Type == "" {
			s.Spec.Type = corev1.ServiceTypeClusterIP
		}
		if s.Spec.ClusterIP == "" {
			for usedIP[nextIP.String()] {
				nextIP = nextIP.Next()
			}
			s.Spec.ClusterIP = nextIP.String()
			usedIP[s.Spec.ClusterIP] = true
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
