package controllers_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
)

// BenchmarkRolloutStatusWrites runs a one-wave rollout to 300 devices whose
// acknowledgements arrive over several seconds, and reports the rollout's
// status writes per second (target: at most 1) and its wall time.
func BenchmarkRolloutStatusWrites(b *testing.B) {
	for b.Loop() {
		ns := newNamespace(b)
		root := "bench/" + ns
		startManager(b)
		simFleet(b, root, 300, "sensor", "1.0.0", devicesim.Behavior{DownloadTime: 2 * time.Second, InstallTime: 3 * time.Second}, nil)
		createFleet(b, ns, "fleet", root)

		wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: scheme})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		w, err := wc.Watch(ctx, &v1.FirmwareRolloutList{}, client.InNamespace(ns))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := k8s.Create(ctx, rollout(ns, "r", "fleet", pct(100))); err != nil {
			b.Fatal(err)
		}
		writes := 0
		var last *v1.FirmwareRolloutStatus
		for ev := range w.ResultChan() {
			ro, ok := ev.Object.(*v1.FirmwareRollout)
			if !ok {
				continue
			}
			if last == nil || !equality.Semantic.DeepEqual(*last, ro.Status) {
				writes++
				last = ro.Status.DeepCopy()
			}
			if ro.Status.Phase == v1.PhaseSucceeded {
				break
			}
		}
		w.Stop()
		cancel()
		wall := time.Since(start)
		b.ReportMetric(float64(writes)/wall.Seconds(), "status-writes/s")
		b.ReportMetric(wall.Seconds(), "rollout-s")
	}
}
