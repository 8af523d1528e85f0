package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// findNATS finds nats-server, which Debian ships and `make interop-brokers`
// installs.
func findNATS() (launcher, error) {
	bin, err := lookPath("nats-server")
	if err != nil {
		return nil, err
	}
	return func(dir, addr string) ([]*process, error) {
		// The MQTT gateway keeps sessions, retained messages and QoS 1
		// messages in JetStream, which needs a server name and a store.
		// The NATS client port is picked by the server (-1), so only the
		// MQTT port can be lost to another process.
		conf := fmt.Sprintf(`server_name: herald-test
listen: "127.0.0.1:-1"
jetstream {
  store_dir: %q
}
mqtt {
  listen: %q
}
`, filepath.Join(dir, "jetstream"), addr)
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		p, err := startProcess("nats-server", exec.Command(bin, "-c", path), "Server is ready")
		if err != nil {
			return nil, err
		}
		return []*process{p}, nil
	}, nil
}
