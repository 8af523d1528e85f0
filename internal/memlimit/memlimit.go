// Package memlimit finds the memory limit of the container a process runs
// in, so that the Go runtime's soft memory limit (GOMEMLIMIT) can sit just
// under it. Without one the garbage collector lets the heap grow to twice
// what is live before it collects: a manager holding 400 MiB of fleet
// state would be killed at a 512 MiB container limit long before it ran
// out of anything it needed.
package memlimit

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// unlimited is what cgroup v1 reports for "no limit" (a page-aligned
// MaxInt64); anything from here up means none.
const unlimited = 1 << 62

// Limit returns the memory limit in bytes of the cgroup the process is in,
// read from root (the file system root, os.DirFS("/") in production), and
// the file it came from. A limit of 0 means none is set; an error means
// none could be read (not Linux, no cgroup file system mounted).
//
// It reads cgroup v2's memory.max, or v1's memory.limit_in_bytes, of the
// process's own cgroup as /proc/self/cgroup names it, then of the root of
// the mount, which is the container's own cgroup when the container has
// its own cgroup namespace (the default under containerd and Docker).
func Limit(root fs.FS) (int64, string, error) {
	var candidates []string
	if b, err := fs.ReadFile(root, "proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// hierarchy-ID:controller-list:cgroup-path
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				candidates = append(candidates, path.Join("sys/fs/cgroup", parts[2], "memory.max"))
			case hasController(parts[1], "memory"):
				candidates = append(candidates, path.Join("sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"))
			}
		}
	}
	candidates = append(candidates, "sys/fs/cgroup/memory.max", "sys/fs/cgroup/memory/memory.limit_in_bytes")
	for _, name := range candidates {
		b, err := fs.ReadFile(root, name)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, "/" + name, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, "", fmt.Errorf("/%s: %q is not a memory limit", name, v)
		}
		if n >= unlimited {
			n = 0
		}
		return n, "/" + name, nil
	}
	return 0, "", fmt.Errorf("no cgroup memory limit file found")
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
