//go:build linux

package ns

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
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

// openFromMain is what TestMain saw when it opened a namespace from the main
// goroutine, which init keeps on the main thread: "" if the main thread
// never left its namespace.
var openFromMain string

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		openFromMain = openOnMainThread()
	}
	os.Exit(m.Run())
}

// openOnMainThread opens a namespace many times on the main thread while a
// goroutine watches that thread's namespace (cobra commands call Open from
// there; NewHandleAt used to switch the calling thread in and out).
func openOnMainThread() string {
	const name = "lc.unit-ns-open-main"
	n, err := Create(name)
	if err != nil {
		return "setting up: " + err.Error()
	}
	defer func() {
		n.Close()
		_ = Delete(name)
	}()
	if unix.Gettid() != unix.Getpid() {
		return "TestMain did not run on the main thread"
	}
	path := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	before, err := os.Readlink(path)
	if err != nil {
		return err.Error()
	}
	stop, seen := make(chan struct{}), make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				seen <- ""
				return
			default:
			}
			if l, err := os.Readlink(path); err == nil && l != before {
				seen <- "the main thread entered " + l
				return
			}
		}
	}()
	for range 300 {
		o, err := Open(name)
		if err != nil {
			close(stop)
			return err.Error()
		}
		o.Close()
	}
	close(stop)
	return <-seen
}

func TestOpenFromTheMainThreadNeverMovesIt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a namespace needs root")
	}
	if openFromMain != "" {
		t.Fatal(openFromMain)
	}
}
