package protocol

import (
	"reflect"
	"testing"
	"time"
)

var (
	bootTime   = time.Date(2026, 3, 2, 8, 0, 1, 0, time.UTC)
	issuedTime = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	testRef    = RolloutRef{Namespace: "factory-7", Name: "th-sensor-1.4.0", UID: "6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b"}
	testDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func intPtr(i int) *int { return &i }

// goldenPayloads is the one table of canonical JSON and values that drives
// both the marshal and the parse tests.
var goldenPayloads = []struct {
	name  string
	json  string
	value any // Presence, Inventory, Notice or Status
}{
	{"presence online", `{"v":1,"state":"online","ts":"2026-03-02T08:00:01Z"}`,
		Presence{V: 1, State: PresenceOnline, Time: bootTime}},
	{"presence will", `{"v":1,"state":"offline"}`,
		Presence{V: 1, State: PresenceOffline}},
	{"inventory", `{"v":1,"deviceId":"sensor-0042","model":"th-sensor","hardwareRevision":"rev C","firmwareVersion":"1.3.2","labels":{"herald.dev/ring":"beta","site":"hall-3"},"ts":"2026-03-02T08:00:01Z"}`,
		Inventory{V: 1, DeviceID: "sensor-0042", Model: "th-sensor", HardwareRevision: "rev C", FirmwareVersion: "1.3.2",
			Labels: map[string]string{"site": "hall-3", "herald.dev/ring": "beta"}, Time: bootTime}},
	{"inventory minimal", `{"v":1,"deviceId":"d","model":"m","hardwareRevision":"1","firmwareVersion":"0.0.1-alpha+b.7"}`,
		Inventory{V: 1, DeviceID: "d", Model: "m", HardwareRevision: "1", FirmwareVersion: "0.0.1-alpha+b.7"}},
	{"notice update", `{"v":1,"action":"update","rollout":{"namespace":"factory-7","name":"th-sensor-1.4.0","uid":"6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b"},"targetVersion":"1.4.0","models":["th-sensor","th-sensor-pro"],"currentVersion":">=1.2.0, <2.0.0","artifacts":[{"url":"https://fw.example.com/th-sensor/1.4.0.bin"},{"url":"http://mirror.example.net/th-sensor-1.4.0.bin"}],"sha256":"` + testDigest + `","size":524288,"signature":"c2lnbmF0dXJl","releaseNotesURL":"https://fw.example.com/th-sensor/1.4.0.html","issuedAt":"2026-03-02T09:30:00Z"}`,
		Notice{V: 1, Action: ActionUpdate, Rollout: testRef, TargetVersion: "1.4.0", Models: []string{"th-sensor", "th-sensor-pro"},
			CurrentVersion: ">=1.2.0, <2.0.0",
			Artifacts:      []Artifact{{URL: "https://fw.example.com/th-sensor/1.4.0.bin"}, {URL: "http://mirror.example.net/th-sensor-1.4.0.bin"}},
			SHA256:         testDigest, Size: 524288, Signature: "c2lnbmF0dXJl", ReleaseNotesURL: "https://fw.example.com/th-sensor/1.4.0.html",
			IssuedAt: issuedTime}},
	{"notice cancel", `{"v":1,"action":"cancel","rollout":{"namespace":"factory-7","name":"th-sensor-1.4.0","uid":"6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b"},"issuedAt":"2026-03-02T09:30:00.25Z"}`,
		Notice{V: 1, Action: ActionCancel, Rollout: testRef, IssuedAt: issuedTime.Add(250 * time.Millisecond)}},
	{"status downloading", `{"v":1,"rolloutUID":"6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b","rollout":"factory-7/th-sensor-1.4.0","targetVersion":"1.4.0","state":"downloading","progress":0,"ts":"2026-03-02T09:30:02Z"}`,
		Status{V: 1, RolloutUID: testRef.UID, Rollout: "factory-7/th-sensor-1.4.0", TargetVersion: "1.4.0", State: StateDownloading,
			Progress: intPtr(0), Time: time.Date(2026, 3, 2, 9, 30, 2, 0, time.UTC)}},
	{"status failed", `{"v":1,"rolloutUID":"u-1","rollout":"ns/r","targetVersion":"2.0.0-rc.1","state":"failed","reason":"download-failed","message":"all 2 mirrors failed:\nHTTP 404","details":{"httpStatus":"404","mirror":"https://fw.example.com/x.bin"}}`,
		Status{V: 1, RolloutUID: "u-1", Rollout: "ns/r", TargetVersion: "2.0.0-rc.1", State: StateFailed, Reason: ReasonDownloadFailed,
			Message: "all 2 mirrors failed:\nHTTP 404", Details: map[string]string{"httpStatus": "404", "mirror": "https://fw.example.com/x.bin"}}},
}

func TestGoldenMarshal(t *testing.T) {
	for _, tc := range goldenPayloads {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var err error
			switch v := tc.value.(type) {
			case Presence:
				got, err = MarshalPresence(&v)
			case Inventory:
				got, err = MarshalInventory(&v)
			case Notice:
				got, err = MarshalNotice(&v)
			case Status:
				got, err = MarshalStatus(&v)
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.json {
				t.Errorf("got  %s\nwant %s", got, tc.json)
			}
		})
	}
}

func TestGoldenParse(t *testing.T) {
	for _, tc := range goldenPayloads {
		t.Run(tc.name, func(t *testing.T) {
			var got any
			var err error
			switch tc.value.(type) {
			case Presence:
				got, err = ParsePresence([]byte(tc.json))
			case Inventory:
				got, err = ParseInventory([]byte(tc.json))
			case Notice:
				got, err = ParseNotice([]byte(tc.json))
			case Status:
				got, err = ParseStatus([]byte(tc.json))
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.value) {
				t.Errorf("got  %#v\nwant %#v", got, tc.value)
			}
		})
	}
}

// Marshal defaults "v" and writes times in UTC, whatever zone the caller
// used.
func TestMarshalCanonicalises(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	got, err := MarshalPresence(&Presence{State: PresenceOnline, Time: bootTime.In(cet)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"state":"online","ts":"2026-03-02T08:00:01Z"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	cases := []struct {
		name string
		fn   func() ([]byte, error)
	}{
		{"presence state", func() ([]byte, error) { return MarshalPresence(&Presence{State: "away"}) }},
		{"presence v2", func() ([]byte, error) { return MarshalPresence(&Presence{V: 2, State: PresenceOnline}) }},
		{"inventory id", func() ([]byte, error) {
			return MarshalInventory(&Inventory{DeviceID: "a/b", Model: "m", HardwareRevision: "1", FirmwareVersion: "1.0.0"})
		}},
		{"notice cancel with update members", func() ([]byte, error) {
			return MarshalNotice(&Notice{Action: ActionCancel, Rollout: testRef, IssuedAt: issuedTime, TargetVersion: "1.0.0"})
		}},
		{"notice update without artifacts", func() ([]byte, error) {
			return MarshalNotice(&Notice{Action: ActionUpdate, Rollout: testRef, IssuedAt: issuedTime, TargetVersion: "1.0.0",
				Models: []string{"m"}, SHA256: testDigest, Size: 1})
		}},
		{"status progress", func() ([]byte, error) {
			return MarshalStatus(&Status{RolloutUID: "u", Rollout: "ns/n", TargetVersion: "1.0.0", State: StateDownloading, Progress: intPtr(101)})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tc.fn(); err == nil {
				t.Errorf("marshalled %s", b)
			}
		})
	}
}
