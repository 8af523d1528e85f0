package view

import "testing"

func TestBar(t *testing.T) {
	tests := []struct {
		width int
		segs  []segment
		want  string
	}{
		{10, nil, "[          ]"},
		{10, []segment{{5, '#'}, {5, '.'}}, "[#####.....]"},
		{10, []segment{{1, '#'}, {2, '>'}, {0, 'x'}}, "[###>>>>>>>]"},
		// One failure among thousands still shows.
		{10, []segment{{9999, '#'}, {1, 'x'}}, "[#########x]"},
		{10, []segment{{1, '#'}, {1, '>'}, {1, 'x'}}, "[####>>>xxx]"},
		{4, []segment{{1, 'a'}, {1, 'b'}, {1, 'c'}, {1, 'd'}, {1, 'e'}}, "[abcd]"},
	}
	for _, tc := range tests {
		if got := bar(tc.width, tc.segs...); got != tc.want {
			t.Errorf("bar(%d, %v) = %q, want %q", tc.width, tc.segs, got, tc.want)
		}
		if got := bar(tc.width, tc.segs...); len(got) != tc.width+2 {
			t.Errorf("bar(%d, %v) is %d wide", tc.width, tc.segs, len(got))
		}
	}
}

func TestOneLineAndQuote(t *testing.T) {
	if got := OneLine("a\tb\nc\x1b[2Jd\u009b"); got != "a b c [2Jd " {
		t.Errorf("OneLine = %q", got)
	}
	for in, want := range map[string]string{
		"sensor-2.1.0":          "sensor-2.1.0",
		"bin/demo/kubeconfig":   "bin/demo/kubeconfig",
		"--type=merge":          "--type=merge",
		"factory-7/sensors/+/#": "'factory-7/sensors/+/#'",
		`{"spec":{"paused":1}}`: `'{"spec":{"paused":1}}'`,
		"it's":                  `'it'\''s'`,
		"":                      "''",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
