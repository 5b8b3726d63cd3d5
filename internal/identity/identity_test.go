package identity_test

import (
	"os"
	"testing"

	"github.com/ironfleet/ironfleet/internal/identity"
)

func TestHostIsTheHostName(t *testing.T) {
	want, err := os.Hostname()
	if err != nil || want == "" {
		t.Skipf("no host name here: %q, %v", want, err)
	}
	got, err := identity.Host()
	if err != nil || got != want {
		t.Fatalf("Host() = %q, %v; want %q", got, err, want)
	}
}
