package mqtt_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// client goroutine has an owner that must stop it at Disconnect.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
