package testenv

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlane is a kube-apiserver and etcd started from the binaries that
// `make envtest-bin` builds, with Herald's CRDs installed.
type ControlPlane struct {
	// Config reaches the apiserver as an administrator.
	Config *rest.Config

	env *envtest.Environment
}

// StartControlPlane starts etcd and kube-apiserver and installs the CRDs in
// config/crd/bases. It is slow (seconds), so packages usually start one in
// TestMain and share it. The caller must Stop it.
func StartControlPlane() (*ControlPlane, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest control plane from %s: %w", assets, err)
	}
	return &ControlPlane{Config: cfg, env: env}, nil
}

// Stop stops the apiserver and etcd and removes their data.
func (c *ControlPlane) Stop() error { return c.env.Stop() }
