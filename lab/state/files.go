package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces path with data: a fresh temporary file beside
// it (created exclusively, never through a link), then a rename, so a
// reader sees the old file or the new one, never half of one. The state
// directory is root's own (0700), so no one else can plant a name in it.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp." + strconv.Itoa(os.Getpid()) + "." + strconv.FormatInt(time.Now().UnixNano(), 36)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Create makes the lab's state directory, 0700 under a Root that only root
// may write. Mkdir, not MkdirAll, for the lab itself: of two ups with one
// name only one may own the lab, or the loser's rollback would take down
// the winner's.
func Create(lab string) error {
	if err := os.MkdirAll(Root, 0o755); err != nil {
		return fmt.Errorf("creating lab state: %w", err)
	}
	if err := os.Mkdir(Dir(lab), 0o700); err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("lab %q is already up (state in %s)", lab, Dir(lab))
		}
		return fmt.Errorf("creating lab state: %w", err)
	}
	return nil
}

// Lock takes the lab's lock: one command that changes a running lab at a
// time (up until it is complete, pod delete, fault inject and clear, down).
// The lock is a flock on a file in the state directory, so a killed holder
// releases it.
func Lock(lab string) (unlock func(), err error) { return lock(lab, -1) }

// TryLock is Lock that gives up after wait, naming the lab: down waits for
// an up or a pod delete in progress, but not for ever.
func TryLock(lab string, wait time.Duration) (unlock func(), err error) { return lock(lab, wait) }

// lock takes the lab's lock, waiting at most wait (for ever if negative).
func lock(lab string, wait time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(Path(lab, lockFile), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("lab %q is %w", lab, ErrNotUp)
		}
		return nil, err
	}
	if wait < 0 {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking lab %s: %w", lab, err)
		}
		return func() { f.Close() }, nil
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK || time.Now().After(deadline) {
			f.Close()
			if err == unix.EWOULDBLOCK {
				return nil, fmt.Errorf("lab %s is busy: another labctl command (up, pod delete, fault) holds its lock %s; waited %v", lab, Path(lab, lockFile), wait)
			}
			return nil, fmt.Errorf("locking lab %s: %w", lab, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CreateIn creates a new file for root to write in dir, a directory that
// may belong to another user (a walk's captures go to the caller's working
// directory): dir is made if missing and opened without following a link
// owned by someone else, and the file is created in it exclusively and
// never through a link, so a name planted in advance makes the create fail
// instead of overwriting what it points at. The file goes to dir's owner,
// so the user who asked for it can read and delete it.
func CreateIn(dir, name string, perm os.FileMode) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := noForeignLinks(dir); err != nil {
		return nil, err
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w (labctl never writes through an existing name)", filepath.Join(dir, name), err)
	}
	var st unix.Stat_t
	if unix.Fstat(dfd, &st) == nil && st.Uid != uint32(os.Geteuid()) {
		_ = unix.Fchown(fd, int(st.Uid), int(st.Gid))
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, name)), nil
}

// noForeignLinks refuses a path with a symbolic link that a user other
// than root owns: it could point a root write anywhere.
func noForeignLinks(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK && st.Uid != 0 {
			return fmt.Errorf("%s: %s is a symbolic link owned by uid %d; root will not write through it", dir, p, st.Uid)
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// Begin records a new lab before anything of it exists: its directory
// with state.json and the other files given, made under a temporary name
// and renamed into place with the lab's lock already held. So no other
// command ever sees the lab without its state, and down waits on the lock
// until up is complete or rolled back. The caller holds the lock until
// unlock.
func Begin(st *State, files map[string][]byte) (unlock func(), err error) {
	if err := os.MkdirAll(Root, 0o755); err != nil {
		return nil, fmt.Errorf("creating lab state: %w", err)
	}
	if _, err := os.Lstat(Dir(st.Lab)); err == nil {
		return nil, fmt.Errorf("lab %q is already up (state in %s)", st.Lab, Dir(st.Lab))
	}
	tmp, err := os.MkdirTemp(Root, "."+st.Lab+".new-")
	if err != nil {
		return nil, fmt.Errorf("creating lab state: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	lf, err := os.OpenFile(filepath.Join(tmp, lockFile), os.O_CREATE|os.O_EXCL|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		lf.Close()
		return nil, err
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	files[stateFile] = b
	for name, data := range files {
		if err := WriteFileAtomic(filepath.Join(tmp, name), data, 0o600); err != nil {
			lf.Close()
			return nil, err
		}
	}
	// rename(2) onto an existing non-empty directory fails: of two ups with
	// one name only one may own the lab, or the loser's rollback would take
	// down the winner's.
	if err := os.Rename(tmp, Dir(st.Lab)); err != nil {
		lf.Close()
		if _, serr := os.Lstat(Dir(st.Lab)); serr == nil {
			return nil, fmt.Errorf("lab %q is already up (state in %s)", st.Lab, Dir(st.Lab))
		}
		return nil, fmt.Errorf("creating lab state: %w", err)
	}
	return func() { lf.Close() }, nil
}
