package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
)

// findAedes finds Node.js, the aedes package that `make interop-brokers`
// installs from npm into bin/aedes, and the launcher in hack/interop/aedes.
func findAedes() (launcher, error) {
	node, err := lookPath("node")
	if err != nil {
		return nil, err
	}
	prefix, err := repoBin("aedes")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(prefix, "node_modules", "aedes", "package.json")); err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	script := filepath.Join(root, "hack", "interop", "aedes", "broker.mjs")
	return func(_, addr string) ([]*process, error) {
		p, err := startProcess("aedes", exec.Command(node, script, prefix, addr), " listening on ")
		if err != nil {
			return nil, err
		}
		return []*process{p}, nil
	}, nil
}
