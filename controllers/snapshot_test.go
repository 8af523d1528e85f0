package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/rollout"
)

// randomIDs are n device IDs that compress badly, so that a snapshot of
// them takes several ConfigMaps.
func randomIDs(n int) rollout.Snapshot {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make(rollout.Snapshot, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%016x", r.Uint64())
	}
	slices.Sort(ids)
	return ids
}

// A save that fails half way leaves no set that counts, and the retry
// completes it; a set saved once is the one every later save returns
// (its status write may have been lost), whatever the fleet is by then.
// The API server's part (ownership, immutability) is the integration
// tests'; this is the bookkeeping of chunks.
func TestSnapshotSaveSurvivesAFailureHalfWay(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	creates, failAt := 0, 2 // the second chunk written (chunk 0 of two or more)
	c := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.ConfigMap); ok {
				creates++
				if creates == failAt {
					return errors.New("etcd is having a bad day")
				}
			}
			return c.Create(ctx, obj, opts...)
		},
	}).Build()
	ro := &v1.FirmwareRollout{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", UID: types.UID("0a1b2c3d-0000-0000-0000-000000000001")}}
	store := newSnapshotStore(c, c)
	ids := randomIDs(120_000)
	ctx := context.Background()
	if _, _, err := store.save(ctx, ro, ids, time.Now()); err == nil {
		t.Fatal("the save with a failed chunk succeeded")
	}
	rec, got, err := store.save(ctx, ro, ids, time.Now())
	if err != nil {
		t.Fatalf("the retried save: %v", err)
	}
	if len(rec.ConfigMaps) < 2 || int(rec.Devices) != len(ids) || !slices.Equal(got, ids) {
		t.Fatalf("record %d ConfigMaps, %d devices; want several ConfigMaps and %d devices", len(rec.ConfigMaps), rec.Devices, len(ids))
	}
	// A fresh process reads the set back by the record.
	ro.Status.Snapshot = rec
	loaded, err := newSnapshotStore(c, c).load(ctx, ro)
	if err != nil || !slices.Equal(loaded, ids) {
		t.Fatalf("load: %d ids, %v", len(loaded), err)
	}
	// The record was lost; the fleet changed meanwhile. The first set stands.
	_, again, err := newSnapshotStore(c, c).save(ctx, ro, randomIDs(10), time.Now())
	if err != nil || !slices.Equal(again, ids) {
		t.Fatalf("a second save returned %d ids (%v), want the first set of %d", len(again), err, len(ids))
	}
}
