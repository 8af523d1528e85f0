//go:build unix && !aix && !solaris

package mqtt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// The directory lock uses flock(2), which the kernel releases when the
// process dies, so a crashed process never leaves a stale lock behind.

// lockDir takes the directory's lock without waiting for it.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, fileStoreLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mqtt: lock session store: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		err = fmt.Errorf("%w: %s", ErrStoreLocked, dir)
	default:
		err = fmt.Errorf("mqtt: lock session store %s: %w", dir, err)
	}
	f.Close()
	return nil, err
}
