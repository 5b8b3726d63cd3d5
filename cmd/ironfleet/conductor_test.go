package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/transport"
)

// TestConductorCommand: `ironfleet conductor` connects to NATS and Redis
// (one server, or the master Sentinels watch), registers itself with its
// groups, and stops cleanly when cancelled.
func TestConductorCommand(t *testing.T) {
	for _, tt := range []struct {
		name  string
		redis func(t *testing.T) string
	}{
		{"redis-server", func(t *testing.T) string { return redistest.Start(t).URL() }},
		{"sentinel", func(t *testing.T) string { return redistest.StartFailover(t).URL() }},
	} {
		t.Run(tt.name, func(t *testing.T) { testConductorCommand(t, tt.redis(t)) })
	}
}

func testConductorCommand(t *testing.T, redisURL string) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := newRootCmd()
	cmd.SetArgs([]string{"conductor", "--nats", ns.URL(), "--redis", redisURL, "--host", "c-test",
		"--group", "east", "--tftp-root", t.TempDir(), "--tftp-listen", "127.0.0.1:0", "--log-level", "warn"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	js, err := transport.NewBus(t.Context(), ns.Conn(t), transport.BusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := transport.NewRegistry(t.Context(), js.JetStream(), transport.RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, _ := reg.Conductors(t.Context())
		if len(cs) == 1 && cs[0].Host == "c-test" && len(cs[0].Groups) == 1 && cs[0].Groups[0] == "east" && cs[0].Alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("conductor not registered within 30s: %+v\n%s", cs, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("conductor exited with %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("conductor did not stop within 30s of cancellation")
	}
}
