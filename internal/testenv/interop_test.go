package testenv_test

import (
	"net"
	"os"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
)

// TestInteropBrokers starts every interop broker and checks, with
// hand-encoded packets rather than Herald's client, that it accepts an
// MQTT 3.1.1 CONNECT and accepts or refuses a 5.0 one as its Lacks says.
// The short form of mqtt's TestInterop starts every broker already, so
// this runs with HERALD_INTEROP=full (`make interop`) only.
func TestInteropBrokers(t *testing.T) {
	if os.Getenv("HERALD_INTEROP") != "full" {
		t.Skip("HERALD_INTEROP=full (make interop) runs it")
	}
	for _, kind := range testenv.BrokerKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			b := testenv.StartInteropBroker(t, kind)
			for _, level := range []byte{4, 5} {
				conn, err := net.Dial("tcp", b.Addr)
				if err != nil {
					t.Fatal(err)
				}
				code, err := connack(t, conn, level, "", "")
				conn.Close()
				accepted := err == nil && code == 0
				want := level == 4 || b.Lacks(testenv.FeatureMQTT5) == ""
				if accepted != want {
					t.Errorf("protocol level %d: CONNACK code %#x, err %v; want accepted %v", level, code, err, want)
				}
			}
		})
	}
}
