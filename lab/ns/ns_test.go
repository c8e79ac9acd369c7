//go:build linux

package ns

import (
	"os"
	"sync"
	"testing"
)

// The main thread stands for the whole process in /proc/<pid>/ns/net, which
// is how labctl down finds a lab's processes. However many namespace
// switches run (Do, and Open's netlink sockets), concurrently, it must stay
// where it was.
func TestNamespaceSwitchesNeverMoveTheMainThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a namespace needs root")
	}
	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	const name = "lc.unit-ns-mainthread"
	n, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		n.Close()
		if err := Delete(name); err != nil {
			t.Error(err)
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				if err := n.Do(func() error { return nil }); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 { // Open enters the namespace too, for its netlink sockets
					o, err := Open(name)
					if err != nil {
						t.Error(err)
						return
					}
					o.Close()
				}
			}
		}()
	}
	wg.Wait()
	after, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("the main thread moved from %s to %s", before, after)
	}
}
