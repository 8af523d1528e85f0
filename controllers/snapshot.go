package controllers

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
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

// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;create

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

// Labels and annotation of snapshot ConfigMaps.
const (
	snapshotRolloutLabel = "herald.dev/rollout-uid"
	snapshotSetLabel     = "herald.dev/snapshot"
	snapshotChunksAnnot  = "herald.dev/chunks"
)

// save keeps ids for ro and returns what status.snapshot records. A set
// is named after its content and written last chunk first, so chunk 0
// exists only once the whole set does, and a save retried after a failure
// half way writes the same names again. When a complete set of ro exists
// already (its status write was lost), the oldest one stands: the first
// freeze is the freeze.
func (s *snapshotStore) save(ctx context.Context, ro *v1.FirmwareRollout, ids rollout.Snapshot, now time.Time) (*v1.TargetSnapshot, rollout.Snapshot, error) {
	if rec, old, err := s.existing(ctx, ro); err != nil || rec != nil {
		return rec, old, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, id := range ids {
		_, _ = io.WriteString(zw, id+"\n")
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	data := buf.Bytes()
	sum := sha256.Sum256(data)
	set := hex.EncodeToString(sum[:5])
	var parts [][]byte
	for len(data) > 0 || len(parts) == 0 {
		part := data[:min(len(data), snapshotChunk)]
		data = data[len(part):]
		parts = append(parts, part)
	}
	rec := &v1.TargetSnapshot{Devices: int32(len(ids)), Time: metav1.NewTime(now), ConfigMaps: make([]string, len(parts))}
	immutable := true
	for i := len(parts) - 1; i >= 0; i-- {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("herald-targets-%s-%s-%d", ro.UID, set, i), Namespace: ro.Namespace,
				Labels: map[string]string{
					"app.kubernetes.io/managed-by": "herald", "herald.dev/rollout": truncateLabel(ro.Name),
					snapshotRolloutLabel: string(ro.UID), snapshotSetLabel: set,
				},
				Annotations: map[string]string{snapshotChunksAnnot: strconv.Itoa(len(parts))},
			},
			BinaryData: map[string][]byte{snapshotKey: parts[i]},
			Immutable:  &immutable,
		}
		if err := controllerutil.SetOwnerReference(ro, cm, s.client.Scheme()); err != nil {
			return nil, nil, err
		}
		if err := s.client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, nil, fmt.Errorf("saving the target snapshot: %w", err)
		}
		rec.ConfigMaps[i] = cm.Name
	}
	s.mu.Lock()
	s.loaded[ro.UID] = ids
	s.mu.Unlock()
	return rec, ids, nil
}

// existing finds the oldest complete snapshot set of ro, if any.
func (s *snapshotStore) existing(ctx context.Context, ro *v1.FirmwareRollout) (*v1.TargetSnapshot, rollout.Snapshot, error) {
	var list corev1.ConfigMapList
	if err := s.reader.List(ctx, &list, client.InNamespace(ro.Namespace), client.MatchingLabels{snapshotRolloutLabel: string(ro.UID)}); err != nil {
		return nil, nil, fmt.Errorf("looking for an earlier target snapshot: %w", err)
	}
	type found struct {
		chunks  map[int]string
		want    int
		created metav1.Time
	}
	sets := map[string]*found{}
	for i := range list.Items {
		cm := &list.Items[i]
		set := cm.Labels[snapshotSetLabel]
		want, err := strconv.Atoi(cm.Annotations[snapshotChunksAnnot])
		if set == "" || err != nil || !ownedBy(cm, ro) {
			continue
		}
		f := sets[set]
		if f == nil {
			f = &found{chunks: map[int]string{}, want: want}
			sets[set] = f
		}
		idx, err := strconv.Atoi(cm.Name[strings.LastIndexByte(cm.Name, '-')+1:])
		if err != nil {
			continue
		}
		f.chunks[idx] = cm.Name
		if idx == 0 {
			f.created = cm.CreationTimestamp
		}
	}
	var best *found
	for _, f := range sets {
		if len(f.chunks) != f.want {
			continue
		}
		if best == nil || f.created.Before(&best.created) {
			best = f
		}
	}
	if best == nil {
		return nil, nil, nil
	}
	rec := &v1.TargetSnapshot{Time: best.created}
	for i := range best.want {
		rec.ConfigMaps = append(rec.ConfigMaps, best.chunks[i])
	}
	ids, err := s.read(ctx, ro, rec.ConfigMaps)
	if err != nil {
		return nil, nil, err
	}
	rec.Devices = int32(len(ids))
	s.mu.Lock()
	s.loaded[ro.UID] = ids
	s.mu.Unlock()
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
