package transport_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// goroutine the bus, the consume loop, the cache watches and the registry
// start must be stopped and waited for by its owner.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
