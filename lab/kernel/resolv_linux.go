//go:build linux

package kernel

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/labctl/labctl/lab/cluster"
	"github.com/labctl/labctl/lab/spec"
	"github.com/labctl/labctl/lab/state"
)

// EtcNetns is where `ip netns exec` finds per-namespace files to bind over
// /etc, so a command run with labctl exec in a pod resolves names the way
// the pod does (kubelet's resolv.conf, dnsPolicy ClusterFirst).
var EtcNetns = "/etc/netns"

// WriteResolvConf gives one pod its resolv.conf. It reports whether it had
// to create EtcNetns, which down then removes once empty.
func WriteResolvConf(t *spec.Topology, lab string, pod spec.Pod) (created bool, err error) {
	return writeNetnsResolvConf(spec.NSName(lab, pod.Name), cluster.ResolvConf(t, pod.Namespace))
}

// WriteInternetResolvConf gives a host on the internet a resolv.conf that
// names the lab's Route 53-like server, so `labctl exec webclient -- curl
// http://portal.example.com/` resolves the way a client on the internet
// would (the lab's public names exist nowhere else).
func WriteInternetResolvConf(lab, host string, dns netip.Addr) (created bool, err error) {
	return writeNetnsResolvConf(spec.NSName(lab, host), "nameserver "+dns.String()+"\n")
}

func writeNetnsResolvConf(nsName, content string) (created bool, err error) {
	if _, err := os.Stat(EtcNetns); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	dir := filepath.Join(EtcNetns, nsName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return created, err
	}
	return created, os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644)
}

// RemoveResolvConfs removes the lab's files under EtcNetns, and EtcNetns
// itself if the lab created it and nothing else is there.
func RemoveResolvConfs(lab string, createdDir bool) error {
	dirs, _ := filepath.Glob(filepath.Join(EtcNetns, spec.NSPrefix+lab+".*"))
	var errs []error
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	if createdDir {
		_ = os.Remove(EtcNetns) // fails, and so stays, if anything else lives there
	}
	return errors.Join(errs...)
}

// StrayEtcNetns are /etc/netns entries with the lab prefix whose lab has no
// state. /etc survives a reboot and /run does not, so these can only be
// left from labs that were up when the machine went down.
func StrayEtcNetns() []string {
	labs, _ := state.Labs()
	up := map[string]bool{}
	for _, l := range labs {
		up[l] = true
	}
	var out []string
	dirs, _ := filepath.Glob(filepath.Join(EtcNetns, spec.NSPrefix+"*"))
	for _, d := range dirs {
		name := strings.TrimPrefix(filepath.Base(d), spec.NSPrefix)
		lab, _, _ := strings.Cut(name, ".")
		if !up[lab] {
			out = append(out, d)
		}
	}
	return out
}

// RemoveStrayEtcNetns removes what StrayEtcNetns finds, and /etc/netns if
// that leaves it empty.
func RemoveStrayEtcNetns() ([]string, error) {
	strays := StrayEtcNetns()
	var errs []error
	for _, d := range strays {
		errs = append(errs, os.RemoveAll(d))
	}
	if ents, err := os.ReadDir(EtcNetns); err == nil && len(ents) == 0 && len(strays) > 0 {
		_ = os.Remove(EtcNetns)
	}
	return strays, errors.Join(errs...)
}
