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
	// LeftOut names config/samples' other FirmwareRollouts, which the
	// overlay leaves out: the demo runs and narrates one rollout, and a
	// second one for the same devices would supersede it.
	LeftOut []string
}

// writeSamples writes the overlay into dir/samples and reads back what it
// renders. The overlay only replaces what only this machine knows: the
// broker URL, and the image's URL, digest and size; and it keeps the first
// of config/samples' FirmwareRollouts, the one the demo narrates.
func (s *Stack) writeSamples(ctx context.Context) (*Samples, error) {
	dir := filepath.Join(s.cfg.Dir, "samples")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	samples := filepath.Join(s.cfg.Root, "config", "samples")
	base, err := filepath.Rel(dir, samples)
	if err != nil {
		return nil, err
	}
	rendered, err := s.kubectlOut(ctx, "kustomize", samples)
	if err != nil {
		return nil, err
	}
	fleets, rollouts, err := decodeSamples(rendered)
	if err != nil {
		return nil, err
	}
	if len(fleets) != 1 || len(rollouts) == 0 {
		return nil, fmt.Errorf("config/samples has %d DeviceFleets and %d FirmwareRollouts; the demo wants one DeviceFleet and a FirmwareRollout", len(fleets), len(rollouts))
	}
	out := &Samples{Overlay: dir}
	for _, ro := range rollouts[1:] {
		out.LeftOut = append(out.LeftOut, ro.Name)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay(base, s.Broker.URL(), s.Firmware, rollouts)), 0o644); err != nil {
		return nil, err
	}
	if rendered, err = s.kubectlOut(ctx, "kustomize", dir); err != nil {
		return nil, err
	}
	if fleets, rollouts, err = decodeSamples(rendered); err != nil {
		return nil, err
	}
	if len(fleets) != 1 || len(rollouts) != 1 {
		return nil, fmt.Errorf("%s renders %d DeviceFleets and %d FirmwareRollouts, not one of each", s.rel(dir), len(fleets), len(rollouts))
	}
	out.Fleet, out.Rollout = fleets[0], rollouts[0]
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

// overlay is the demo's kustomization of config/samples (at base): the
// fleet on this machine's broker, the first rollout with this machine's
// image, and the other rollouts deleted.
func overlay(base, brokerURL string, fw *FirmwareServer, rollouts []v1.FirmwareRollout) string {
	replace := func(path string, value any) string {
		v, _ := json.Marshal(value)
		return fmt.Sprintf("    - op: replace\n      path: %s\n      value: %s\n", path, v)
	}
	text := "# Written by the demo: config/samples, pointed at this machine's broker and\n" +
		"# firmware server. Edit config/samples and apply this directory again with\n" +
		"# kubectl apply -k.\n" +
		"resources:\n- " + base + "\n" +
		"patches:\n" +
		"- target:\n    kind: DeviceFleet\n  patch: |\n" +
		replace("/spec/broker/urls", []string{brokerURL}) +
		"- target:\n    kind: FirmwareRollout\n    name: " + rollouts[0].Name + "\n  patch: |\n" +
		replace("/spec/firmware/url", fw.URL) +
		replace("/spec/firmware/sha256", fw.SHA256) +
		replace("/spec/firmware/size", fw.Size)
	for _, ro := range rollouts[1:] {
		text += "# The demo runs one rollout.\n" +
			"- patch: |\n    $patch: delete\n    apiVersion: " + v1.GroupVersion.String() + "\n    kind: FirmwareRollout\n" +
			"    metadata:\n      name: " + ro.Name + "\n"
		if ro.Namespace != "" {
			text += "      namespace: " + ro.Namespace + "\n"
		}
	}
	return text
}

// decodeSamples returns the DeviceFleets and FirmwareRollouts of rendered
// manifests, in their order.
func decodeSamples(rendered string) ([]v1.DeviceFleet, []v1.FirmwareRollout, error) {
	var (
		fleets   []v1.DeviceFleet
		rollouts []v1.FirmwareRollout
	)
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, nil, fmt.Errorf("config/samples: %w", err)
		}
		var err error
		switch meta.Kind {
		case "DeviceFleet":
			var f v1.DeviceFleet
			err = yaml.Unmarshal([]byte(doc), &f)
			fleets = append(fleets, f)
		case "FirmwareRollout":
			var ro v1.FirmwareRollout
			err = yaml.Unmarshal([]byte(doc), &ro)
			rollouts = append(rollouts, ro)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("config/samples: %w", err)
		}
	}
	return fleets, rollouts, nil
}
