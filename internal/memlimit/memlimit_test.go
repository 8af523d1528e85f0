package memlimit

import (
	"testing"
	"testing/fstest"
)

func TestLimit(t *testing.T) {
	cases := map[string]struct {
		files   map[string]string
		want    int64
		from    string
		wantErr bool
	}{
		"cgroup v2, own namespace": {
			files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "536870912\n"},
			want:  512 << 20, from: "/sys/fs/cgroup/memory.max",
		},
		"cgroup v2, host namespace: the process's own cgroup": {
			files: map[string]string{
				"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
				"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "268435456\n",
				"sys/fs/cgroup/memory.max":                  "max\n",
			},
			want: 256 << 20, from: "/sys/fs/cgroup/kubepods/pod1/c1/memory.max",
		},
		"cgroup v2 without a limit": {
			files: map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"},
			want:  0, from: "/sys/fs/cgroup/memory.max",
		},
		"cgroup v1": {
			files: map[string]string{
				"proc/self/cgroup":                           "9:pids:/\n4:memory:/\n1:name=systemd:/\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n",
			},
			want: 512 << 20, from: "/sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		"cgroup v1 without a limit (a page-aligned MaxInt64)": {
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory:/\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
			},
			want: 0, from: "/sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		"cgroup v1 with combined controllers": {
			files: map[string]string{
				"proc/self/cgroup": "3:cpuacct,memory:/pod/c\n",
				"sys/fs/cgroup/memory/pod/c/memory.limit_in_bytes": "1048576\n",
			},
			want: 1 << 20, from: "/sys/fs/cgroup/memory/pod/c/memory.limit_in_bytes",
		},
		"no cgroup file system": {
			files:   map[string]string{"proc/self/cgroup": "0::/\n"},
			wantErr: true,
		},
		"garbage in the file": {
			files:   map[string]string{"sys/fs/cgroup/memory.max": "lots\n"},
			wantErr: true,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for p, data := range c.files {
				fsys[p] = &fstest.MapFile{Data: []byte(data)}
			}
			got, from, err := Limit(fsys)
			if (err != nil) != c.wantErr {
				t.Fatalf("error %v, want error %v", err, c.wantErr)
			}
			if got != c.want || from != c.from {
				t.Fatalf("limit %d from %q, want %d from %q", got, from, c.want, c.from)
			}
		})
	}
}
