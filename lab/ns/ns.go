//go:build linux

// Package ns is the only place in labctl that switches network namespaces.
// Everything else either holds a netlink handle bound to a namespace (which
// needs no switching) or calls Do for the few things that have no handle
// form: sysctls, capture sockets, listening sockets and child processes.
package ns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are bind-mounted, as iproute2 expects, so
// `ip netns exec` and `ip netns list` see the lab's namespaces.
const Dir = "/run/netns"

// NS is an open named network namespace with its own netlink handle.
type NS struct {
	Name   string
	Handle netns.NsHandle
	// NL talks to this namespace only. Never use netlink's package-level
	// functions: they act on whatever namespace the calling thread is in.
	NL *netlink.Handle
}

// Path is the bind mount of a named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Create makes a new named namespace, leaving the calling thread where it was.
// It fails if the name already exists.
func Create(name string) (*NS, error) {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", Dir, err)
	}
	p := Path(name)
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("namespace %s already exists", name)
		}
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	f.Close()

	err = onFreshThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		return unix.Mount("/proc/thread-self/ns/net", p, "none", unix.MS_BIND, "")
	})
	if err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	n, err := Open(name)
	if err != nil {
		return nil, err
	}
	if lo, err := n.NL.LinkByName("lo"); err == nil {
		err = n.NL.LinkSetUp(lo)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("setting lo up in %s: %w", name, err)
		}
	}
	return n, nil
}

// Go never ends the main thread: a goroutine that exits locked to it wedges
// it, in whatever namespace onFreshThread left it in, and /proc/<pid>/ns/net
// is the main thread's. A process whose main thread sits in a lab's
// namespace is one that `labctl down` kills as that lab's (it once killed
// the e2e suite that way). With the main goroutine locked to the main thread
// from init, no other goroutine, so no onFreshThread, ever runs there.
func init() { runtime.LockOSThread() }

// onFreshThread runs fn on a locked OS thread that is thrown away afterwards,
// so a namespace change made by fn can never leak to other goroutines.
func onFreshThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Impossible while init holds the main thread; refuse rather
			// than wedge it in a namespace.
			runtime.UnlockOSThread()
			errc <- errors.New("ns: a namespace switch was about to run on the main thread")
			return
		}
		// No UnlockOSThread: the goroutine exits locked and Go ends the thread.
		errc <- fn()
	}()
	return <-errc
}

// Open opens an existing named namespace.
func Open(name string) (*NS, error) {
	h, err := netns.GetFromPath(Path(name))
	if err != nil {
		return nil, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	// Every netlink protocol the lab uses must be bound here: for a protocol
	// the handle lacks, netlink silently opens a socket in the calling
	// thread's namespace, which would read (or change) the host's state.
	// The sockets are opened on a fresh thread in the namespace, not with
	// NewHandleAt, which switches (and switches back) the calling thread.
	var nl *netlink.Handle
	err = onFreshThread(func() error {
		if err := netns.Set(h); err != nil {
			return err
		}
		var err error
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE, unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	return &NS{Name: name, Handle: h, NL: nl}, nil
}

// String is the namespace's kernel name, for errors.
func (n *NS) String() string { return n.Name }

// Close releases the handles; the namespace itself stays.
func (n *NS) Close() {
	if n.NL != nil {
		n.NL.Close()
	}
	n.Handle.Close()
}

// Do runs fn on a locked OS thread switched into the namespace. Sockets and
// child processes created in fn belong to the namespace for their lifetime;
// goroutines started in fn do not run in it. The thread is discarded after.
func (n *NS) Do(fn func() error) error {
	return onFreshThread(func() error {
		if err := netns.Set(n.Handle); err != nil {
			return fmt.Errorf("entering namespace %s: %w", n.Name, err)
		}
		return fn()
	})
}

// Go runs fn on a locked OS thread switched into the namespace and returns
// once the thread is in it (or failed to get there; then fn never runs).
// Unlike Do it does not wait for fn: the thread lives as long as fn runs
// and is thrown away after. Children that fn starts with PR_SET_PDEATHSIG
// are signalled when that thread ends, so a child meant to live as long as
// labctl (a trace printer) is started and waited for inside fn.
func (n *NS) Go(fn func()) error {
	entered := make(chan error, 1)
	go func() {
		err := onFreshThread(func() error {
			if err := netns.Set(n.Handle); err != nil {
				return fmt.Errorf("entering namespace %s: %w", n.Name, err)
			}
			entered <- nil
			fn()
			return nil
		})
		if err != nil {
			entered <- err
		}
	}()
	return <-entered
}

// WriteSysctl writes a /proc/sys key (with slashes, e.g.
// net/ipv4/conf/eth0/rp_filter). Call it inside Do: /proc/sys/net shows the
// namespace of the thread that opens it.
func WriteSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(key, "/", "."), value, err)
	}
	return nil
}

// ReadSysctl reads a /proc/sys key; call it inside Do.
func ReadSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	return strings.TrimSpace(string(b)), err
}

// Delete unmounts and removes a named namespace. The kernel frees it once no
// process and no socket holds it any more. A missing namespace is not an error.
func Delete(name string) error {
	p := Path(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting namespace %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing namespace %s: %w", name, err)
	}
	return nil
}

// List returns the named namespaces whose names start with prefix.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Inode identifies a named namespace; /proc/<pid>/ns/net of a process inside
// it links to "net:[<inode>]".
func Inode(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(Path(name), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
