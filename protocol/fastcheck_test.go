package protocol

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// fastChecks pairs each fast check with the general validator it stands in
// for: a value the fast check accepts must be one the validator accepts.
var fastChecks = map[string]struct {
	fast    func(string) bool
	general func(string) bool
}{
	"label key": {isLabelKey, func(s string) bool { return len(validation.IsQualifiedName(s)) == 0 }},
	"label value": {
		func(s string) bool { return s == "" || isLabelName(s) },
		func(s string) bool { return len(validation.IsValidLabelValue(s)) == 0 },
	},
	"namespace": {isDNSLabel, func(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }},
	"name":      {isDNSSubdomain, func(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }},
	"version": {isPlainVersion, func(s string) bool {
		_, err := parseVersion(s)
		return err == nil
	}},
}

// TestFastChecks checks that the fast checks take the common forms (or the
// hot path would not be fast) and agree with the general validators.
func TestFastChecks(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	for name, tc := range map[string]struct {
		check  string
		values []string
		fast   bool // whether the fast check takes them
	}{
		"label keys": {"label key", []string{"site", "ring", "a", "Z9", "my.name", "x_y-z", long(63, "k"),
			"herald.dev/ring", "a/b", long(253, "p") + "/" + long(63, "k")}, true},
		"label keys for the general validator": {"label key", []string{
			"", "/a", "a/", "A.dev/ring", "a..b/c", long(254, "p") + "/k", "-a", "a-", ".a", "a.", "_a", "a b", "a/b/c", "é", long(64, "k"), "a\n"}, false},
		"label values":       {"label value", []string{"", "ga", "site-7", "1.2.3", long(63, "v")}, true},
		"label values, slow": {"label value", []string{"-ga", "ga-", "g a", "ga\n", long(64, "v"), "ü"}, false},
		"namespaces":         {"namespace", []string{"ns", "a", "0", "team-7", long(63, "n")}, true},
		"namespaces, slow":   {"namespace", []string{"", "Ns", "-a", "a-", "a.b", "a_b", long(64, "n"), "a\n"}, false},
		"names": {"name", []string{"r", "sensor-2.1.0", "a.b.c", long(64, "n"), long(126, "a.") + "a",
			long(253, "n")}, true},
		"names, slow": {"name", []string{"", "A", "a..b", ".a", "a.", "a-.b", "a.-b", "a_b", long(254, "n"), "a\n"}, false},
		"versions": {"version", []string{"0.0.0", "1.2.3", "10.20.30", long(19, "9") + ".0.0",
			"1." + long(19, "9") + ".1"}, true},
		"versions, slow": {"version", []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3",
			"1.2.3-rc.1", "1.2.3+build", long(20, "9") + ".0.0", "1..3", "1.2.", ".1.2", "1.2.3\n", " 1.2.3"}, false},
	} {
		c := fastChecks[tc.check]
		for _, v := range tc.values {
			if got := c.fast(v); got != tc.fast {
				t.Errorf("%s: fast check of %q = %v, want %v", name, v, got, tc.fast)
			}
			if c.fast(v) && !c.general(v) {
				t.Errorf("%s: the fast check accepts %q, which the general validator refuses", name, v)
			}
		}
	}
}

// FuzzFastChecks: no fast check accepts what its general validator refuses.
func FuzzFastChecks(f *testing.F) {
	for _, s := range []string{"site", "ga", "a.b", "1.2.3", "0.10.0", "ns-1", "a-b.c-d", "", "-", "A.b"} {
		f.Add(s)
		f.Add("herald.dev/" + s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, c := range fastChecks {
			if c.fast(s) && !c.general(s) {
				t.Errorf("%s: the fast check accepts %q, which the general validator refuses", name, s)
			}
		}
	})
}
