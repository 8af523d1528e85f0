package protocol

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConstraint(t *testing.T) {
	for _, tc := range []struct {
		in, canonical string // canonical "" means invalid
	}{
		{">=1.2.0, <2.0.0", ">=1.2.0, <2.0.0"},
		{">=1.2.0,<2.0.0", ">=1.2.0, <2.0.0"},
		{"  >= 1.2.0 ,   < 2.0.0  ", ">=1.2.0, <2.0.0"},
		{"=1.0.0", "=1.0.0"},
		{"!=1.3.1", "!=1.3.1"},
		{"<1.4.0||>=1.5.0,<2.0.0", "<1.4.0 || >=1.5.0, <2.0.0"},
		{"<=2.0.0-rc.1", "<=2.0.0-rc.1"},
		{"", ""},
		{" ", ""},
		{"1.2.0", ""},
		{">=1.2.0 <2.0.0", ""},
		{">=1.2.0,", ""},
		{"||>=1.0.0", ""},
		{">=1.2", ""},
		{">=v1.2.0", ""},
		{"^1.2.0", ""},
		{"~1.2.0", ""},
		{"1.2.x", ""},
		{"1.2.0 - 1.4.0", ""},
		{"=>1.2.0", ""},
		{"==1.2.0", ""},
		{">=1.2.0+build.1", ""},
		{"*", ""},
		{">=1.2.0\t", ""},
		{">=1.0.0, " + strings.Repeat("!=1.0.1, ", 40) + "<2.0.0", ""},
	} {
		c, err := ParseConstraint(tc.in)
		switch {
		case tc.canonical == "" && err == nil:
			t.Errorf("ParseConstraint(%q) = %q, want an error", tc.in, c)
		case tc.canonical != "" && err != nil:
			t.Errorf("ParseConstraint(%q): %v", tc.in, err)
		case tc.canonical != "" && c.String() != tc.canonical:
			t.Errorf("ParseConstraint(%q) = %q, want %q", tc.in, c, tc.canonical)
		}
	}
}

// Comparisons use SemVer precedence alone: pre-releases are ordinary
// versions (unlike npm-style ranges), build metadata does not count.
func TestConstraintAllows(t *testing.T) {
	for _, tc := range []struct {
		constraint string
		allowed    []string
		refused    []string
	}{
		{">=1.2.0, <2.0.0",
			[]string{"1.2.0", "1.2.1", "1.9.99", "2.0.0-rc.1", "1.2.0+build.5", "1.3.0-beta"},
			[]string{"1.1.9", "1.2.0-rc.1", "2.0.0", "2.0.1", "0.9.0"}},
		{"=1.3.1", []string{"1.3.1", "1.3.1+b7"}, []string{"1.3.0", "1.3.1-rc.1", "1.3.2"}},
		{"!=1.3.1", []string{"1.3.0", "1.3.2", "1.3.1-rc.1"}, []string{"1.3.1", "1.3.1+other"}},
		{">1.3.1", []string{"1.3.2", "1.3.2-alpha", "1.4.0"}, []string{"1.3.1", "1.3.1+z", "1.3.1-rc.1", "1.3.0"}},
		{"<1.4.0 || >=1.5.0, <2.0.0", []string{"1.3.9", "1.5.0", "1.9.0"}, []string{"1.4.0", "1.4.9", "2.0.0"}},
		{"<=1.0.0-rc.2", []string{"1.0.0-rc.1", "1.0.0-rc.2", "0.9.0"}, []string{"1.0.0-rc.10", "1.0.0"}},
	} {
		c, err := ParseConstraint(tc.constraint)
		if err != nil {
			t.Fatalf("ParseConstraint(%q): %v", tc.constraint, err)
		}
		for _, v := range tc.allowed {
			if ok, err := c.Allows(v); !ok || err != nil {
				t.Errorf("%q does not allow %q (%v)", tc.constraint, v, err)
			}
		}
		for _, v := range tc.refused {
			if ok, err := c.Allows(v); ok || err != nil {
				t.Errorf("%q allows %q (%v)", tc.constraint, v, err)
			}
		}
	}
	c, _ := ParseConstraint(">=1.0.0")
	if _, err := c.Allows("v1.0.0"); err == nil {
		t.Error("Allows accepted an invalid version")
	}
}

func TestAppliesTo(t *testing.T) {
	update := Notice{V: Version, Action: ActionUpdate, Rollout: testRef, TargetVersion: "1.4.0",
		Models: []string{"th-sensor", "th-sensor-pro"}, CurrentVersion: ">=1.2.0, <2.0.0",
		Artifacts: []Artifact{{URL: "https://fw.example.com/a.bin"}}, SHA256: testDigest, Size: 1, IssuedAt: issuedTime}
	open := update
	open.CurrentVersion = ""
	cancel := Notice{V: Version, Action: ActionCancel, Rollout: testRef, IssuedAt: issuedTime}
	broken := update
	broken.CurrentVersion = "^1.2.0"

	for _, tc := range []struct {
		name           string
		n              *Notice
		model, current string
		want           bool
		err            bool
	}{
		{"in range", &update, "th-sensor", "1.3.2", true, false},
		{"second model", &update, "th-sensor-pro", "1.2.0", true, false},
		{"other model", &update, "th-gateway", "1.3.2", false, false},
		{"model is case-sensitive", &update, "TH-SENSOR", "1.3.2", false, false},
		{"below range", &update, "th-sensor", "1.1.0", false, false},
		{"above range", &update, "th-sensor", "2.0.0", false, false},
		{"pre-release in range", &update, "th-sensor", "1.4.0-rc.1", true, false},
		{"already on target", &update, "th-sensor", "1.4.0", false, false},
		{"target rebuilt: build metadata differs", &update, "th-sensor", "1.4.0+b1", true, false},
		{"no constraint", &open, "th-sensor", "0.1.0", true, false},
		{"no constraint, downgrade", &open, "th-sensor", "3.0.0", true, false},
		{"no constraint, on target", &open, "th-sensor", "1.4.0", false, false},
		{"cancel", &cancel, "th-sensor", "1.3.2", false, false},
		{"invalid current version", &update, "th-sensor", "v1.3.2", false, true},
		{"invalid constraint", &broken, "th-sensor", "1.3.2", false, true},
	} {
		got, err := tc.n.AppliesTo(tc.model, tc.current)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: AppliesTo(%q, %q) = %v, %v; want %v, error %v", tc.name, tc.model, tc.current, got, err, tc.want, tc.err)
		}
	}
	if _, err := broken.AppliesTo("th-sensor", "1.3.2"); !errors.Is(err, ErrInvalidField) {
		t.Errorf("invalid constraint error %v does not wrap ErrInvalidField", err)
	}
}

func TestSupersedes(t *testing.T) {
	at := func(uid string, d time.Duration) *Notice {
		return &Notice{Rollout: RolloutRef{UID: uid}, IssuedAt: issuedTime.Add(d)}
	}
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		n, o *Notice
		want bool
	}{
		{"later", at("a", time.Second), at("b", 0), true},
		{"earlier", at("b", 0), at("a", time.Second), false},
		{"a millisecond later", at("a", time.Millisecond), at("b", 0), true},
		{"same instant, greater UID", at("b", 0), at("a", 0), true},
		{"same instant, smaller UID", at("a", 0), at("b", 0), false},
		{"same notice", at("a", 0), at("a", 0), false},
		{"same instant in another zone", &Notice{Rollout: RolloutRef{UID: "a"}, IssuedAt: issuedTime.In(cet)}, at("a", 0), false},
	} {
		if got := tc.n.Supersedes(tc.o); got != tc.want {
			t.Errorf("%s: Supersedes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStates(t *testing.T) {
	terminal := map[State]bool{StateAccepted: false, StateRejected: true, StateDownloading: false,
		StateInstalling: false, StateSucceeded: true, StateFailed: true, StateCanceled: true}
	for s, term := range terminal {
		if !s.Valid() || s.Terminal() != term {
			t.Errorf("%q: Valid %v, Terminal %v", s, s.Valid(), s.Terminal())
		}
	}
	for _, s := range []State{"", "Accepted", "done", "cancelled"} {
		if s.Valid() || s.Terminal() {
			t.Errorf("%q counts as a state", s)
		}
	}
}
