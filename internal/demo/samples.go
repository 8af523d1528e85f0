package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// Samples are the DeviceFleet and FirmwareRollout of config/samples, as the
// demo applies them.
type Samples struct {
	// Overlay is the kustomization that points config/samples at this
	// machine's broker and firmware server.
	Overlay string
	Fleet   v1.DeviceFleet
	Rollout v1.FirmwareRollout
}

// writeSamples writes the overlay into dir/samples and reads back what it
// renders. The overlay only replaces what only this machine knows: the
// broker URL, and the image's URL, digest and size.
func (s *Stack) writeSamples(ctx context.Context) (*Samples, error) {
	dir := filepath.Join(s.cfg.Dir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	base, err := filepath.Rel(dir, filepath.Join(s.cfg.Root, "config", "samples"))
	if err != nil {
		return nil, err
	}
	replace := func(path string, value any) string {
		v, _ := json.Marshal(value)
		return fmt.Sprintf("    - op: replace\n      path: %s\n      value: %s\n", path, v)
	}
	fw := s.Firmware
	overlay := "# Written by the demo: config/samples, pointed at this machine's broker and\n" +
		"# firmware server. Edit config/samples and apply this directory again with\n" +
		"# kubectl apply -k.\n" +
		"resources:\n- " + base + "\n" +
		"patches:\n" +
		"- target:\n    kind: DeviceFleet\n  patch: |\n" +
		replace("/spec/broker/urls", []string{s.Broker.URL()}) +
		"- target:\n    kind: FirmwareRollout\n  patch: |\n" +
		replace("/spec/firmware/url", fw.URL) +
		replace("/spec/firmware/sha256", fw.SHA256) +
		replace("/spec/firmware/size", fw.Size)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		return nil, err
	}
	rendered, err := s.kubectlOut(ctx, "kustomize", dir)
	if err != nil {
		return nil, err
	}
	out := &Samples{Overlay: dir}
	var fleets, rollouts int
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, fmt.Errorf("config/samples: %w", err)
		}
		switch meta.Kind {
		case "DeviceFleet":
			fleets++
			err = yaml.Unmarshal([]byte(doc), &out.Fleet)
		case "FirmwareRollout":
			rollouts++
			err = yaml.Unmarshal([]byte(doc), &out.Rollout)
		}
		if err != nil {
			return nil, fmt.Errorf("config/samples: %w", err)
		}
	}
	if fleets != 1 || rollouts != 1 {
		return nil, fmt.Errorf("config/samples has %d DeviceFleets and %d FirmwareRollouts; the demo wants one of each", fleets, rollouts)
	}
	// Without a namespace, kubectl puts them in its context's: default.
	for _, m := range []*string{&out.Fleet.Namespace, &out.Rollout.Namespace} {
		if *m == "" {
			*m = "default"
		}
	}
	if out.Rollout.Namespace != out.Fleet.Namespace || out.Rollout.Spec.FleetRef.Name != out.Fleet.Name {
		return nil, fmt.Errorf("config/samples: FirmwareRollout %s does not refer to DeviceFleet %s", out.Rollout.Name, out.Fleet.Name)
	}
	return out, nil
}
