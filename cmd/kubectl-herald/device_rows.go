package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/view"
	"github.com/heraldiot/herald/protocol"
)

// Where a row's state comes from.
const (
	sourceDevice   = "device"   // the device's retained status
	sourceOperator = "operator" // the rollout's failure sample: a timeout
	sourceSpec     = "spec"     // spec.skipDevices
)

// deviceRow is one device of a rollout, as `devices` prints it.
type deviceRow struct {
	Device string `json:"device"`
	// State is the device's reported state, or skipped, or failed for a
	// device the operator timed out.
	State  string `json:"state"`
	Source string `json:"source"`
	// Reported is the state the device reported, when State differs.
	Reported string            `json:"reported,omitempty"`
	Progress *int              `json:"progress,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Message  string            `json:"message,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
	// TargetVersion is what the device reported it is updating to.
	TargetVersion string `json:"targetVersion,omitempty"`
	// ReportedAt is the device's own clock, when it has one.
	ReportedAt *time.Time `json:"reportedAt,omitempty"`

	Model            string            `json:"model,omitempty"`
	FirmwareVersion  string            `json:"firmwareVersion,omitempty"`
	HardwareRevision string            `json:"hardwareRevision,omitempty"`
	Labels           map[string]string `json:"labels,omitempty"`
	Presence         string            `json:"presence,omitempty"`
}

// deviceRows is the rollout's devices as the broker and the rollout know
// them, sorted by ID: every device whose retained status is about this
// rollout (by UID), with the operator's view laid over it where the
// device cannot tell. An unfinished device in spec.skipDevices is skipped,
// as the operator counts it; a device in the failure sample that has no
// outcome of its own timed out, and is failed.
func deviceRows(ro *v1.FirmwareRollout, devices map[string]*device) []deviceRow {
	rows := map[string]*deviceRow{}
	for id, d := range devices {
		s := d.status
		if s == nil || s.RolloutUID != string(ro.UID) {
			continue
		}
		r := &deviceRow{
			Device: id, State: string(s.State), Source: sourceDevice, Progress: s.Progress,
			Reason: s.Reason, Message: s.Message, Details: s.Details, TargetVersion: s.TargetVersion,
		}
		if !s.Time.IsZero() {
			t := s.Time
			r.ReportedAt = &t
		}
		rows[id] = r
	}
	for _, f := range ro.Status.FailureSample {
		r := rows[f.Device]
		if r != nil && protocol.State(r.State).Terminal() {
			continue // the device's own outcome stands
		}
		if r == nil {
			r = &deviceRow{Device: f.Device}
			rows[f.Device] = r
		} else {
			r.Reported = r.State
		}
		r.State, r.Source, r.Reason = "failed", sourceOperator, f.Reason
		if f.State != "" {
			r.State = f.State
		}
	}
	for _, id := range ro.Spec.SkipDevices {
		r := rows[id]
		switch {
		case r != nil && protocol.State(r.State).Terminal():
			continue
		case r == nil && (devices[id] == nil || devices[id].inventory == nil):
			continue // not a device of the fleet: nothing to skip
		case r == nil:
			r = &deviceRow{Device: id}
			rows[id] = r
		default:
			r.Reported = r.State
		}
		r.State, r.Source = "skipped", sourceSpec
	}
	out := make([]deviceRow, 0, len(rows))
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		r := rows[id]
		if d := devices[id]; d != nil {
			if inv := d.inventory; inv != nil {
				r.Model, r.FirmwareVersion, r.HardwareRevision, r.Labels = inv.Model, inv.FirmwareVersion, inv.HardwareRevision, inv.Labels
			}
			if p := d.presence; p != nil {
				r.Presence = string(p.State)
			}
		}
		out = append(out, *r)
	}
	return out
}

// filterRows keeps the rows whose state is wanted; nil wants every row.
func filterRows(rows []deviceRow, want map[string]bool) []deviceRow {
	if want == nil {
		return rows
	}
	var out []deviceRow
	for _, r := range rows {
		if want[r.State] {
			out = append(out, r)
		}
	}
	return out
}

func countInventories(devices map[string]*device) int {
	n := 0
	for _, d := range devices {
		if d.inventory != nil {
			n++
		}
	}
	return n
}

// writeTable prints the rows; wide adds presence, hardware, the target
// version, the device's report time and its message.
func writeTable(w io.Writer, rows []deviceRow, wide bool) {
	t := view.Table{}
	head := []string{"DEVICE", "STATE", "PROGRESS", "REASON", "MODEL", "VERSION"}
	if wide {
		head = append(head, "PRESENCE", "HARDWARE", "TARGET", "REPORTED", "MESSAGE")
	}
	t.Row(head...)
	for _, r := range rows {
		progress := "-"
		if r.Progress != nil {
			progress = strconv.Itoa(*r.Progress) + "%"
		}
		state := r.State
		if r.Reported != "" {
			state += " (" + r.Reported + ")"
		}
		cells := []string{view.OneLine(r.Device), view.OneLine(state), progress, view.OneLine(view.OrDash(r.Reason)), view.OneLine(view.OrDash(r.Model)), view.OneLine(view.OrDash(r.FirmwareVersion))}
		if wide {
			reported := "-"
			if r.ReportedAt != nil {
				reported = r.ReportedAt.UTC().Format(time.RFC3339)
			}
			cells = append(cells, view.OrDash(r.Presence), view.OneLine(view.OrDash(r.HardwareRevision)), view.OneLine(view.OrDash(r.TargetVersion)), reported, view.OneLine(view.OrDash(r.Message)))
		}
		t.Row(cells...)
	}
	t.Write(w)
}

// devicesList is the JSON output: the rollout, and its devices.
type devicesList struct {
	Rollout    string      `json:"rollout"`
	RolloutUID string      `json:"rolloutUID"`
	Devices    []deviceRow `json:"devices"`
}

func writeJSON(w io.Writer, ro *v1.FirmwareRollout, rows []deviceRow) error {
	if rows == nil {
		rows = []deviceRow{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(devicesList{Rollout: ro.Namespace + "/" + ro.Name, RolloutUID: string(ro.UID), Devices: rows}); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}
