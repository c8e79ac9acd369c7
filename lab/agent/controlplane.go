package agent

import (
	"sort"

	"github.com/labctl/labctl/lab/spec"
)

// Version is kube-apiserver's /version answer (k8s.io/apimachinery
// pkg/version.Info) for the EKS release the lab models.
type Version struct {
	Major      string `json:"major"`
	Minor      string `json:"minor"`
	GitVersion string `json:"gitVersion"`
	GitCommit  string `json:"gitCommit"`
	BuildDate  string `json:"buildDate"`
	GoVersion  string `json:"goVersion"`
	Compiler   string `json:"compiler"`
	Platform   string `json:"platform"`
}

// VersionInfo is the lab's API server's version: an EKS 1.33 build (EKS
// appends "-eks-<commit>" to the upstream version).
var VersionInfo = Version{Major: "1", Minor: "33", GitVersion: "v1.33.5-eks-labctl", GitCommit: "labctl",
	BuildDate: "2026-12-01T00:00:00Z", GoVersion: "go1.24", Compiler: "gc", Platform: "linux/amd64"}

// PodList is a v1 PodList of the lab's pods in namespace ns, sorted by
// name, with the fields kubectl get pods -o wide shows.
type podList struct {
	Kind       string            `json:"kind"`
	APIVersion string            `json:"apiVersion"`
	Metadata   map[string]string `json:"metadata"`
	Items      []podItem         `json:"items"`
}

type podItem struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase  string              `json:"phase"`
		PodIP  string              `json:"podIP"`
		PodIPs []map[string]string `json:"podIPs"`
	} `json:"status"`
}

// PodList lists the topology's pods in namespace ns as the API server's
// /api/v1/namespaces/<ns>/pods does.
func PodList(t *spec.Topology, ns string) any {
	l := podList{Kind: "PodList", APIVersion: "v1", Metadata: map[string]string{"resourceVersion": "1"}, Items: []podItem{}}
	if t == nil {
		return l
	}
	for _, p := range t.Pods {
		if p.Namespace != ns {
			continue
		}
		var it podItem
		it.Metadata.Name, it.Metadata.Namespace, it.Metadata.Labels = p.Name, p.Namespace, p.Labels
		it.Spec.NodeName = p.Node
		it.Status.Phase = "Running"
		if p.Phase == spec.PodStarting {
			it.Status.Phase = "Pending"
		}
		it.Status.PodIP = p.IP.String()
		it.Status.PodIPs = []map[string]string{{"ip": p.IP.String()}}
		l.Items = append(l.Items, it)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Metadata.Name < l.Items[j].Metadata.Name })
	return l
}
