package simagent

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// agent the fleet boots must be owned and waited for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
