package view

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// RenderFleet draws a fleet's status as text: readiness, devices online
// and offline, the firmware version and model histograms, counters, and
// conditions. It is a pure function of the fleet and now.
func RenderFleet(f *v1.DeviceFleet, now time.Time) string {
	st := &f.Status
	var b strings.Builder
	field := func(name, format string, args ...any) {
		if name != "" {
			name += ":"
		}
		fmt.Fprintf(&b, "%-14s %s\n", name, fmt.Sprintf(format, args...))
	}
	field("Name", "%s/%s", f.Namespace, f.Name)
	version := f.Spec.Broker.ProtocolVersion
	if version == "" {
		version = v1.ProtocolV5
	}
	field("Broker", "%s (MQTT %s)", strings.Join(f.Spec.Broker.URLs, ", "), version)
	field("Topic root", "%s", f.Spec.TopicRoot)
	if c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionReady); c != nil {
		field("Ready", "%s (%s)", c.Status, OrDash(c.Reason))
	} else {
		field("Ready", "Unknown (no status yet)")
	}
	d := st.Devices
	field("Devices", "%d known: %d online, %d offline", d.Known, d.Online, d.Offline)
	if d.Known > 0 {
		field("", "%s", bar(barWidth, segment{int64(d.Online), '#'}, segment{int64(d.Offline), '.'})+"  # online  . offline")
	}
	if st.LastSyncTime != nil {
		field("Last sync", "%s (%s)", st.LastSyncTime.UTC().Format(time.RFC3339), ago(now, st.LastSyncTime))
	} else {
		field("Last sync", "never")
	}
	field("Messages", "%d malformed, %d ignored beyond maxDevices, %d resync repairs",
		st.MalformedMessages, st.IgnoredDeviceMessages, st.ResyncRepairs)

	b.WriteString("\nFirmware versions:\n")
	renderHistogram(&b, "VERSION", st.FirmwareVersions, d.Known)
	b.WriteString("\nModels:\n")
	renderHistogram(&b, "MODEL", st.Models, d.Known)

	b.WriteString("\nConditions:\n")
	renderConditions(&b, st.Conditions, now)
	return b.String()
}

// renderHistogram draws the buckets, largest first as status keeps them,
// as shares of the known devices. Status keeps only the largest buckets,
// so the devices they leave out are one more row.
func renderHistogram(b *strings.Builder, what string, buckets []v1.ValueCount, known int32) {
	if len(buckets) == 0 {
		b.WriteString("  <none>\n")
		return
	}
	total := int64(known)
	var sum int64
	for _, c := range buckets {
		sum += int64(c.Count)
	}
	total = max(total, sum)
	t := Table{Indent: "  "}
	t.Row(what, "DEVICES", "SHARE")
	row := func(value string, n int64) {
		t.Row(value, strconv.FormatInt(n, 10), fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total)),
			bar(barWidth, segment{n, '#'}, segment{total - n, ' '}))
	}
	for _, c := range buckets {
		row(OneLine(c.Value), int64(c.Count))
	}
	if rest := total - sum; rest > 0 {
		row("(others)", rest)
	}
	t.Write(b)
}
