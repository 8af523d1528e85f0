package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
)

func rollout(ns, name, fleet string, waves ...v1.Wave) *v1.FirmwareRollout {
	return &v1.FirmwareRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.FirmwareRolloutSpec{
			FleetRef: corev1.LocalObjectReference{Name: fleet},
			Firmware: v1.FirmwareSpec{
				Version: "2.0.0", URL: "https://fw.example/sensor-2.0.0.bin",
				SHA256: strings.Repeat("0f", 32), Size: 4 << 20, Models: []string{"sensor"},
			},
			Strategy: v1.RolloutStrategy{Waves: waves},
		},
	}
}

func pct(p int32) v1.Wave { return v1.Wave{Percent: ptr.To(p)} }

func TestRolloutSmoke(t *testing.T) {
	ns := newNamespace(t)
	root := "smoke/" + ns
	startManager(t)
	simFleet(t, root, 20, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r1", "fleet", pct(50), pct(100))
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r1", v1.PhaseSucceeded, 60*time.Second)
	if got.Status.Totals.Targeted != 20 || got.Status.Totals.Succeeded != 20 {
		t.Fatalf("totals %+v, want 20 targeted and succeeded", got.Status.Totals)
	}
}
