package redistest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

func TestStoreAndRead(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := c.Get(t.Context(), "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want \"v\", nil", got, err)
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name     string
		keepData bool
		crash    bool
		opts     []redistest.Option
		wantKey  bool
	}{
		{name: "keep data", keepData: true, wantKey: true},
		{name: "drop data", keepData: false, wantKey: false},
		{name: "crash without AOF loses writes", crash: true, wantKey: false},
		{name: "crash with AOF keeps writes", crash: true, opts: []redistest.Option{redistest.WithAOF()}, wantKey: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, tt.opts...)
			c := srv.Client(t)
			if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if tt.crash {
				srv.Crash(t)
			} else {
				srv.Restart(t, tt.keepData)
			}
			// The same client reconnects to the same socket by itself.
			n, err := c.Exists(t.Context(), "k").Result()
			if err != nil {
				t.Fatalf("EXISTS after restart: %v", err)
			}
			if got := n == 1; got != tt.wantKey {
				t.Fatalf("key present after restart = %v, want %v", got, tt.wantKey)
			}
		})
	}
}

// TestFailover: a write the replica acknowledged (WAIT) survives the
// master's SIGKILL, and the same failover client writes to the new master.
func TestFailover(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d sentinels", n), func(t *testing.T) {
			f := redistest.StartFailover(t, redistest.WithSentinels(n))
			c := f.Client(t)
			ctx := t.Context()
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			if got, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || got != 1 {
				t.Fatalf("WAIT 1 = %d, %v; want 1 replica", got, err)
			}
			old := f.KillMaster(t)
			start := time.Now()
			next := f.WaitFailover(t, old)
			t.Logf("failed over from %s to %s in %s", old.Addr(), next.Addr(), time.Since(start).Round(time.Millisecond))
			got, err := c.Get(ctx, "k").Result()
			if err != nil || got != "v" {
				t.Fatalf("GET k after failover = %q, %v; want \"v\"", got, err)
			}
			if err := c.Set(ctx, "k", "w", 0).Err(); err != nil {
				t.Fatalf("SET after failover: %v", err)
			}
		})
	}
}
