package controllers

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/rollout"
)

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create

// snapshotChunk is how many compressed bytes one ConfigMap holds, below
// the 1 MiB object limit with room for metadata. A million IDs of twelve
// characters compress into a few of them.
const snapshotChunk = 900 << 10

// snapshotKey is the data key of a snapshot ConfigMap.
const snapshotKey = "devices.gz"

// snapshotStore keeps the frozen target sets of Snapshot rollouts in
// immutable ConfigMaps owned by the rollout, so that they outlive the
// operator, and caches them by rollout UID. The ConfigMaps are read with
// the uncached reader: a cache would hold every ConfigMap of the cluster.
type snapshotStore struct {
	client client.Client
	reader client.Reader

	mu     sync.Mutex
	loaded map[types.UID]rollout.Snapshot
}

func newSnapshotStore(c client.Client, r client.Reader) *snapshotStore {
	return &snapshotStore{client: c, reader: r, loaded: map[types.UID]rollout.Snapshot{}}
}

func snapshotName(ro *v1.FirmwareRollout, i int) string {
	return fmt.Sprintf("herald-targets-%s-%d", ro.UID, i)
}

// save writes ids for ro and returns what status.snapshot records. When a
// snapshot of ro exists already (a status write lost after the save), that
// one stands and is returned: the first freeze is the freeze.
func (s *snapshotStore) save(ctx context.Context, ro *v1.FirmwareRollout, ids rollout.Snapshot, now time.Time) (*v1.TargetSnapshot, rollout.Snapshot, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, id := range ids {
		_, _ = io.WriteString(zw, id+"\n")
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	data := buf.Bytes()
	rec := &v1.TargetSnapshot{Devices: int32(len(ids)), Time: metav1.NewTime(now)}
	immutable := true
	for i := 0; i == 0 || len(data) > 0; i++ {
		part := data[:min(len(data), snapshotChunk)]
		data = data[len(part):]
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: snapshotName(ro, i), Namespace: ro.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "herald", "herald.dev/rollout": truncateLabel(ro.Name)},
			},
			BinaryData: map[string][]byte{snapshotKey: part},
			Immutable:  &immutable,
		}
		if err := controllerutil.SetOwnerReference(ro, cm, s.client.Scheme()); err != nil {
			return nil, nil, err
		}
		if err := s.client.Create(ctx, cm); apierrors.IsAlreadyExists(err) && i == 0 {
			return s.recover(ctx, ro)
		} else if err != nil {
			return nil, nil, fmt.Errorf("saving the target snapshot: %w", err)
		}
		rec.ConfigMaps = append(rec.ConfigMaps, cm.Name)
	}
	s.mu.Lock()
	s.loaded[ro.UID] = ids
	s.mu.Unlock()
	return rec, ids, nil
}

// recover reads back a snapshot whose status record was lost.
func (s *snapshotStore) recover(ctx context.Context, ro *v1.FirmwareRollout) (*v1.TargetSnapshot, rollout.Snapshot, error) {
	rec := &v1.TargetSnapshot{}
	for i := 0; ; i++ {
		var cm corev1.ConfigMap
		err := s.reader.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: snapshotName(ro, i)}, &cm)
		if apierrors.IsNotFound(err) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		rec.ConfigMaps = append(rec.ConfigMaps, cm.Name)
		if i == 0 {
			rec.Time = cm.CreationTimestamp
		}
	}
	ids, err := s.read(ctx, ro, rec.ConfigMaps)
	if err != nil {
		return nil, nil, err
	}
	rec.Devices = int32(len(ids))
	return rec, ids, nil
}

// load returns the snapshot status.snapshot records for ro.
func (s *snapshotStore) load(ctx context.Context, ro *v1.FirmwareRollout) (rollout.Snapshot, error) {
	s.mu.Lock()
	ids, ok := s.loaded[ro.UID]
	s.mu.Unlock()
	if ok {
		return ids, nil
	}
	ids, err := s.read(ctx, ro, ro.Status.Snapshot.ConfigMaps)
	if err != nil {
		return nil, err
	}
	if len(ids) != int(ro.Status.Snapshot.Devices) {
		return nil, fmt.Errorf("the target snapshot holds %d devices, status.snapshot says %d", len(ids), ro.Status.Snapshot.Devices)
	}
	s.mu.Lock()
	s.loaded[ro.UID] = ids
	s.mu.Unlock()
	return ids, nil
}

func (s *snapshotStore) read(ctx context.Context, ro *v1.FirmwareRollout, names []string) (rollout.Snapshot, error) {
	var data []byte
	for _, name := range names {
		var cm corev1.ConfigMap
		if err := s.reader.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &cm); err != nil {
			return nil, fmt.Errorf("reading the target snapshot: ConfigMap %s: %w", name, err)
		}
		if !ownedBy(&cm, ro) {
			return nil, fmt.Errorf("reading the target snapshot: ConfigMap %s is not owned by the rollout", name)
		}
		data = append(data, cm.BinaryData[snapshotKey]...)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading the target snapshot: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("reading the target snapshot: %w", err)
	}
	ids := rollout.Snapshot(strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n"))
	if len(raw) == 0 {
		ids = rollout.Snapshot{}
	}
	if !slices.IsSorted(ids) {
		slices.Sort(ids)
	}
	return ids, nil
}

func (s *snapshotStore) forget(uid types.UID) {
	s.mu.Lock()
	delete(s.loaded, uid)
	s.mu.Unlock()
}

func ownedBy(obj metav1.Object, owner *v1.FirmwareRollout) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == owner.UID {
			return true
		}
	}
	return false
}

// truncateLabel keeps a name within a label value's 63 characters.
func truncateLabel(s string) string {
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-.")
	}
	return s
}
