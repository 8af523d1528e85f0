package protocol

import (
	"strings"
	"testing"
	"time"
)

const baseNotice = `{"v":1,"action":"update","rollout":{"namespace":"ns","name":"ro","uid":"u1"},` +
	`"targetVersion":"1.1.0","models":["m"],"artifacts":[{"url":"https://fw.example/1.bin"}],` +
	`"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","size":10,` +
	`"issuedAt":"2026-01-01T00:00:00Z"`

// Retries and maintenance windows travel in the notice; an attempt of 1
// is written by leaving it out, so a first notice keeps its bytes.
func TestNoticeAttemptAndWindows(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		wantErr     string // "" means valid
	}{
		{"no extras", ``, ""},
		{"retry", `,"attempt":3`, ""},
		{"attempt zero", `,"attempt":0`, ""},
		{"attempt too high", `,"attempt":101`, "attempt"},
		{"attempt negative", `,"attempt":-1`, "attempt"},
		{"attempt huge", `,"attempt":99999999999999999`, "attempt"},
		{"window", `,"maintenanceWindows":[{"schedule":"0 2 * * *","durationSeconds":3600,"timeZone":"Europe/Berlin"}]`, ""},
		{"window in UTC", `,"maintenanceWindows":[{"schedule":"@daily","durationSeconds":60}]`, ""},
		{"window without schedule", `,"maintenanceWindows":[{"durationSeconds":60}]`, "maintenanceWindows[0].schedule"},
		{"window too long", `,"maintenanceWindows":[{"schedule":"@daily","durationSeconds":604801}]`, "durationSeconds"},
		{"window zero", `,"maintenanceWindows":[{"schedule":"@daily","durationSeconds":0}]`, "durationSeconds"},
		{"window control bytes", `,"maintenanceWindows":[{"schedule":"0 2 * * *\n","durationSeconds":60}]`, "schedule"},
		{"window odd zone", `,"maintenanceWindows":[{"schedule":"@daily","durationSeconds":60,"timeZone":"../etc/passwd x"}]`, "timeZone"},
		{"nine windows", `,"maintenanceWindows":[` + strings.Repeat(`{"schedule":"@daily","durationSeconds":60},`, 8) + `{"schedule":"@daily","durationSeconds":60}]`, "at most 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseNotice([]byte(baseNotice + tc.extra + "}"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseNotice: %v, want an error about %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := MarshalNotice(&n)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseNotice(b)
			if err != nil {
				t.Fatalf("round trip: %v", err)
			}
			if again.EffectiveAttempt() != n.EffectiveAttempt() || len(again.MaintenanceWindows) != len(n.MaintenanceWindows) {
				t.Fatalf("round trip changed the notice: %+v -> %+v", n, again)
			}
			if n.EffectiveAttempt() == 1 && strings.Contains(string(b), "attempt") {
				t.Fatalf("a first attempt is written out: %s", b)
			}
		})
	}
}

func TestCancelCarriesNoAttempt(t *testing.T) {
	n := Notice{Action: ActionCancel, Rollout: RolloutRef{Namespace: "ns", Name: "ro", UID: "u1"},
		IssuedAt: time.Unix(1, 0), Attempt: 2}
	if _, err := MarshalNotice(&n); err == nil {
		t.Fatal("a cancel notice with an attempt was accepted")
	}
}

// Of one rollout, a later attempt wins whatever the issue times say;
// across rollouts, issuedAt decides as before.
func TestSupersedesByAttempt(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	mk := func(uid string, at time.Time, attempt int) *Notice {
		return &Notice{Rollout: RolloutRef{UID: uid}, IssuedAt: at, Attempt: attempt}
	}
	for _, tc := range []struct {
		name string
		n, o *Notice
		want bool
	}{
		{"retry over first", mk("a", t0, 2), mk("a", t0, 0), true},
		{"first under retry", mk("a", t0, 1), mk("a", t0, 2), false},
		{"explicit 1 equals absent", mk("a", t0, 1), mk("a", t0, 0), false},
		{"retry wins over later issue time of the same rollout", mk("a", t0, 3), mk("a", t0.Add(time.Hour), 2), true},
		{"newer rollout beats an old rollout's retry", mk("b", t0.Add(time.Second), 0), mk("a", t0, 5), true},
		{"old rollout's retry does not beat a newer rollout", mk("a", t0, 5), mk("b", t0.Add(time.Second), 0), false},
	} {
		if got := tc.n.Supersedes(tc.o); got != tc.want {
			t.Errorf("%s: Supersedes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStatusEchoesAttempt(t *testing.T) {
	const base = `{"v":1,"rolloutUID":"u1","rollout":"ns/ro","targetVersion":"1.1.0","state":"failed","reason":"download-failed"`
	s, err := ParseStatus([]byte(base + `,"attempt":2}`))
	if err != nil || s.EffectiveAttempt() != 2 {
		t.Fatalf("status with attempt 2: %+v, %v", s, err)
	}
	s, err = ParseStatus([]byte(base + `}`))
	if err != nil || s.EffectiveAttempt() != 1 {
		t.Fatalf("status without attempt: %+v, %v", s, err)
	}
	if _, err := ParseStatus([]byte(base + `,"attempt":1000}`)); err == nil {
		t.Fatal("attempt 1000 accepted")
	}
}
