package protocol_test

import (
	"fmt"

	"github.com/heraldiot/herald/protocol"
)

func ExampleTopics() {
	topics, err := protocol.NewTopics("factory-7/sensors")
	if err != nil {
		panic(err)
	}
	fmt.Println(topics.Presence("sensor-0042"))
	fmt.Println(protocol.Cohort("sensor-0042"))
	for _, filter := range topics.Subscriptions("sensor-0042", "th-sensor") {
		fmt.Println(filter)
	}
	id, kind, err := topics.ParseDeviceTopic("factory-7/sensors/devices/sensor-0042/status")
	fmt.Println(id, kind, err)
	// Output:
	// factory-7/sensors/devices/sensor-0042/presence
	// 4
	// factory-7/sensors/notices/th-sensor/04
	// factory-7/sensors/devices/sensor-0042/notice
	// sensor-0042 status <nil>
}

func ExampleNotice_AppliesTo() {
	n, err := protocol.ParseNotice([]byte(`{"v":1,"action":"update",
		"rollout":{"namespace":"factory-7","name":"th-sensor-1.4.0","uid":"6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b"},
		"targetVersion":"1.4.0","models":["th-sensor"],"currentVersion":">=1.2.0, <2.0.0",
		"artifacts":[{"url":"https://fw.example.com/th-sensor/1.4.0.bin"}],
		"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":524288,
		"issuedAt":"2026-03-02T09:30:00Z"}`))
	if err != nil {
		panic(err)
	}
	for _, running := range []string{"1.3.2", "1.1.0", "1.4.0", "2.0.0-rc.1"} {
		ok, _ := n.AppliesTo("th-sensor", running)
		fmt.Println(running, ok)
	}
	// Output:
	// 1.3.2 true
	// 1.1.0 false
	// 1.4.0 false
	// 2.0.0-rc.1 true
}

func ExampleParseStatus() {
	s, err := protocol.ParseStatus([]byte(`{"v":1,"rolloutUID":"u-1","rollout":"ns/r","targetVersion":"1.4.0","state":"exploded"}`))
	fmt.Println(s.State == "", err)
	// Output:
	// true status: malformed: invalid member "state": "exploded" is not a state of protocol v1
}
