package mqtt

import "testing"

func TestResolveReference(t *testing.T) {
	tests := []struct {
		ref, current, want string
		wantErr            bool
	}{
		{"other:1884", "tcp://here:1883", "tcp://other:1884", false},
		{"other", "tls://here:8883", "tls://other", false}, // the scheme's default port
		{"other:443", "wss://here/mqtt", "wss://other:443/mqtt", false},
		{"a:1 b:2", "tcp://here", "tcp://a:1", false}, // the first of a list
		{"[::1]:1884", "tcp://here", "tcp://[::1]:1884", false},
		{"::1", "tcp://here", "tcp://[::1]", false},
		{"mqtts://broker.example.com:8883", "tcp://here", "mqtts://broker.example.com:8883", false},
		{"", "tcp://here", "", true},
		{"a/b", "tcp://here", "", true},
		{"user@host", "tcp://here", "", true},
		{"tcp://", "tcp://here", "", true},
	}
	for _, tt := range tests {
		got, err := resolveReference(tt.ref, tt.current)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("resolveReference(%q, %q) = %q, %v; want %q (error %v)", tt.ref, tt.current, got, err, tt.want, tt.wantErr)
		}
	}
}
