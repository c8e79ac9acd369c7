//go:build linux

package ns

import (
	"os"
	"sync"
	"testing"
)

// The main thread stands for the whole process in /proc/<pid>/ns/net, which
// is how labctl down finds a lab's processes. However many namespace
// switches run, concurrently, it must stay where it was.
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
