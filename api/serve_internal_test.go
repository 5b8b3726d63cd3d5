package api

import (
	"testing"
	"time"
)

// TestServeTimeoutDefaults: zero Config timeouts give Serve's server the
// documented defaults; set ones are used as given.
func TestServeTimeoutDefaults(t *testing.T) {
	tests := []struct {
		name                 string
		cfg                  Config
		wantHeader, wantIdle time.Duration
	}{
		{"zero values", Config{}, DefaultReadHeaderTimeout, DefaultIdleTimeout},
		{"set", Config{ReadHeaderTimeout: time.Second, IdleTimeout: 2 * time.Second}, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if err := cfg.setDefaults(); err != nil {
				t.Fatal(err)
			}
			hs := (&Server{cfg: cfg}).httpServer()
			if hs.ReadHeaderTimeout != tt.wantHeader || hs.IdleTimeout != tt.wantIdle {
				t.Errorf("ReadHeaderTimeout %s, IdleTimeout %s; want %s, %s", hs.ReadHeaderTimeout, hs.IdleTimeout, tt.wantHeader, tt.wantIdle)
			}
		})
	}
}
