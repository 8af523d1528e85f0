//go:build !unix || aix || solaris

package mqtt

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens the lock file without locking it: these platforms lack
// flock(2), and a lock file that a crash would leave behind must not stop
// a restarted process from resuming its session. Two processes must not
// share a store directory here.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, fileStoreLock), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mqtt: lock session store: %w", err)
	}
	return f, nil
}
