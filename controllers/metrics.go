package controllers

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/mqttprom"
)

// Metrics are Herald's Prometheus metrics, served on the manager's
// metrics endpoint next to controller-runtime's own.
type Metrics struct {
	rolloutDevices   *prometheus.GaugeVec
	rolloutPhase     *prometheus.GaugeVec
	rolloutCondition *prometheus.GaugeVec
	notices          *prometheus.CounterVec
	acks             *prometheus.CounterVec
	malformed        *prometheus.CounterVec
	brokerConnected  *prometheus.GaugeVec
	fleetSynced      *prometheus.GaugeVec
	standbySynced    *prometheus.GaugeVec
	devicesTracked   *prometheus.GaugeVec
	deviceLimit      *prometheus.GaugeVec
	ignoredMessages  *prometheus.GaugeVec
	resyncRepairs    *prometheus.GaugeVec

	// Each fleet's MQTT client exports its own counters (packets by type,
	// reconnects, in-flight, handler queue) while its session runs.
	reg     prometheus.Registerer
	mu      sync.Mutex
	clients map[types.NamespacedName]prometheus.Collector
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg:     reg,
		clients: make(map[types.NamespacedName]prometheus.Collector),
		rolloutDevices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_rollout_devices",
			Help: "Targeted devices of a firmware rollout, by state.",
		}, []string{"namespace", "rollout", "state"}),
		rolloutPhase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_rollout_phase",
			Help: "1 for a firmware rollout's current status.phase, 0 for every other phase.",
		}, []string{"namespace", "rollout", "phase"}),
		rolloutCondition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_rollout_condition",
			Help: "1 for the status (true, false, unknown) a firmware rollout's condition has, 0 for the others; 0 for all three while the rollout does not have the condition.",
		}, []string{"namespace", "rollout", "condition", "status"}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_notices_published_total",
			Help: "Notices published to brokers, by action (update, withdraw, cancel).",
		}, []string{"namespace", "fleet", "action"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_device_acks_total",
			Help: "Status reports received from devices, by state.",
		}, []string{"namespace", "fleet", "state"}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_malformed_messages_total",
			Help: "Device messages that could not be used.",
		}, []string{"namespace", "fleet"}),
		brokerConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_broker_connected",
			Help: "1 while a fleet's broker connection is up.",
		}, []string{"namespace", "fleet"}),
		fleetSynced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_fleet_synced",
			Help: "1 while a fleet's device state is rebuilt from a complete retained replay on the current connection.",
		}, []string{"namespace", "fleet"}),
		standbySynced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_standby_fleet_synced",
			Help: "On a replica that is not the leader (--warm-standby): 1 while its read-only session holds a complete picture of the fleet.",
		}, []string{"namespace", "fleet"}),
		devicesTracked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_fleet_devices_tracked",
			Help: "Devices a fleet's state holds, with or without inventory.",
		}, []string{"namespace", "fleet"}),
		deviceLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_fleet_device_limit_reached",
			Help: "1 while a fleet has more devices on its broker than spec.maxDevices lets Herald track.",
		}, []string{"namespace", "fleet"}),
		ignoredMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_fleet_ignored_device_messages",
			Help: "Messages about devices beyond spec.maxDevices in a fleet's current state.",
		}, []string{"namespace", "fleet"}),
		resyncRepairs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_fleet_resync_repairs",
			Help: "Device and notice records periodic re-syncs found the live stream had missed (broker drops), since the fleet's session started.",
		}, []string{"namespace", "fleet"}),
	}
	for _, c := range []prometheus.Collector{m.rolloutDevices, m.rolloutPhase, m.rolloutCondition, m.notices, m.acks, m.malformed, m.brokerConnected,
		m.fleetSynced, m.standbySynced, m.devicesTracked, m.deviceLimit, m.ignoredMessages, m.resyncRepairs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// hooks feeds session events into the metrics.
func (m *Metrics) hooks() fleet.Hooks {
	return fleet.Hooks{
		Message: func(f types.NamespacedName, res fleet.Result) {
			switch {
			case res.Malformed:
				m.malformed.WithLabelValues(f.Namespace, f.Name).Inc()
			case res.Status != "":
				m.acks.WithLabelValues(f.Namespace, f.Name, string(res.Status)).Inc()
			}
		},
		Client: m.fleetClient,
		Connection: func(f types.NamespacedName, up bool) {
			m.brokerConnected.WithLabelValues(f.Namespace, f.Name).Set(one(up))
		},
	}
}

// fleetClient registers a running session's client collector, labelled
// with its fleet, and unregisters it when the session stops.
func (m *Metrics) fleetClient(f types.NamespacedName, c *mqtt.Client, running bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.clients[f]; ok {
		m.reg.Unregister(old)
		delete(m.clients, f)
	}
	if !running {
		return
	}
	col := mqttprom.NewCollector(c, prometheus.Labels{"namespace": f.Namespace, "fleet": f.Name})
	if err := m.reg.Register(col); err == nil {
		m.clients[f] = col
	}
}

// observeFleet exports a fleet's picture: synced, devices tracked, the
// device cap and re-sync repairs.
func (m *Metrics) observeFleet(f types.NamespacedName, synced bool, sum fleet.Summary, repairs int64) {
	if m == nil {
		return
	}
	m.fleetSynced.WithLabelValues(f.Namespace, f.Name).Set(one(synced))
	m.devicesTracked.WithLabelValues(f.Namespace, f.Name).Set(float64(sum.Tracked))
	m.deviceLimit.WithLabelValues(f.Namespace, f.Name).Set(one(sum.LimitReached()))
	m.ignoredMessages.WithLabelValues(f.Namespace, f.Name).Set(float64(sum.OverLimit))
	m.resyncRepairs.WithLabelValues(f.Namespace, f.Name).Set(float64(repairs))
}

// forgetFleet drops a deleted fleet's series.
func (m *Metrics) forgetFleet(f types.NamespacedName) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.GaugeVec{m.fleetSynced, m.devicesTracked, m.deviceLimit, m.ignoredMessages, m.resyncRepairs, m.brokerConnected} {
		v.DeleteLabelValues(f.Namespace, f.Name)
	}
}

func (m *Metrics) noticePublished(ns, fleet, action string) {
	if m != nil {
		m.notices.WithLabelValues(ns, fleet, action).Inc()
	}
}

// observeRollout exports a rollout's device counts, phase and conditions.
// Phase and condition status follow kube-state-metrics' pattern: a series
// for every value, 1 for the current one and 0 for the others, so a
// change flips values and never ends a series (which would reset an
// alert's "for" clock). For the same reason there is no reason label: the
// phase and the Degraded condition already tell a pause by the failure
// policy apart.
func (m *Metrics) observeRollout(ro *v1.FirmwareRollout) {
	if m == nil {
		return
	}
	t := ro.Status.Totals
	for state, n := range map[string]int32{
		"waiting": t.Waiting, "notified": t.Notified, "inProgress": t.InProgress, "succeeded": t.Succeeded,
		"failed": t.Failed, "rejected": t.Rejected, "canceled": t.Canceled, "skipped": t.Skipped,
		"timedOut": t.TimedOut, "retrying": t.Retrying,
	} {
		m.rolloutDevices.WithLabelValues(ro.Namespace, ro.Name, state).Set(float64(n))
	}
	phases := []v1.RolloutPhase{
		v1.PhasePending, v1.PhaseDryRun, v1.PhaseProgressing, v1.PhasePaused, v1.PhaseWaitingForApproval,
		v1.PhaseSucceeded, v1.PhaseFailed, v1.PhaseAborted, v1.PhaseCanceled,
	}
	for _, p := range phases {
		m.rolloutPhase.WithLabelValues(ro.Namespace, ro.Name, string(p)).Set(one(p == ro.Status.Phase))
	}
	// A fixed list of types, so that a condition Herald does not know
	// cannot add series.
	conditions := []string{
		v1.ConditionReady, v1.ConditionReconciling, v1.ConditionStalled, v1.ConditionProgressing,
		v1.ConditionPaused, v1.ConditionFinished, v1.ConditionDegraded,
	}
	for _, typ := range conditions {
		// A missing condition (Reconciling and Stalled are present only
		// while true, as kstatus has them) is 0 for all three statuses.
		var status metav1.ConditionStatus
		if c := apimeta.FindStatusCondition(ro.Status.Conditions, typ); c != nil {
			status = c.Status
		}
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			m.rolloutCondition.WithLabelValues(ro.Namespace, ro.Name, typ, strings.ToLower(string(s))).Set(one(status == s))
		}
	}
}

// forgetRollout drops a deleted rollout's series.
func (m *Metrics) forgetRollout(ns, name string) {
	if m == nil {
		return
	}
	for _, v := range []*prometheus.GaugeVec{m.rolloutDevices, m.rolloutPhase, m.rolloutCondition} {
		v.DeletePartialMatch(prometheus.Labels{"namespace": ns, "rollout": name})
	}
}

// one is a gauge's value for a condition: 1 when it holds, else 0.
func one(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeStandby records whether a standby's warm session for a fleet is
// synced.
func (m *Metrics) observeStandby(f types.NamespacedName, synced bool) {
	if m != nil {
		m.standbySynced.WithLabelValues(f.Namespace, f.Name).Set(one(synced))
	}
}

// forgetStandby drops a fleet's standby series: the fleet is gone, or the
// replica was elected and serves it for real.
func (m *Metrics) forgetStandby(f types.NamespacedName) {
	if m != nil {
		m.standbySynced.DeleteLabelValues(f.Namespace, f.Name)
	}
}
