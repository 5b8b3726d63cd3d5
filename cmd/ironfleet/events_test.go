package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/syncbuf"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func runCmd(ctx context.Context, out *syncbuf.Buffer, args ...string) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(out)
	return root.ExecuteContext(ctx)
}

func TestEventsPrintsStoredEvents(t *testing.T) {
	srv := natstest.Start(t)
	b, err := transport.NewBus(t.Context(), srv.Conn(t), transport.BusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []wire.Event{
		{Type: wire.EventProvisionState, Node: "n1", From: "available", To: "deploying"},
		{Type: wire.EventPowerState, Node: "n2", From: "power off", To: "power on"},
		{Type: wire.EventTaskDead, Node: "n1", Task: "t9", Code: wire.CodeBMC, Message: "gave up"},
	} {
		ev.Version, ev.ID, ev.Time = wire.EventVersion, wire.NewUUID(), time.Now().UTC()
		if err := b.PublishEvent(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		args  []string
		lines int
		want  string
	}{
		{"all as text", nil, 3, `node=n2 "power off" → "power on"`},
		{"one node", []string{"--node", "n1"}, 2, "task.dead"},
		{"json", []string{"--json", "--node", "n2"}, 1, `"type":"node.power_state"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncbuf.Buffer
			args := append([]string{"events", "--nats", srv.URL()}, tt.args...)
			if err := runCmd(t.Context(), &out, args...); err != nil {
				t.Fatalf("events: %v\n%s", err, out.String())
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(got) != tt.lines || !strings.Contains(out.String(), tt.want) {
				t.Errorf("output:\n%s\nwant %d lines containing %q", out.String(), tt.lines, tt.want)
			}
			if tt.name == "json" {
				var ev wire.Event
				if err := json.Unmarshal([]byte(got[0]), &ev); err != nil || ev.Node != "n2" {
					t.Errorf("JSON line %q: %v", got[0], err)
				}
			}
		})
	}
}

func TestEventsFollow(t *testing.T) {
	srv := natstest.Start(t)
	b, err := transport.NewBus(t.Context(), srv.Conn(t), transport.BusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PublishEvent(t.Context(), wire.NewEvent(wire.EventLockHandoff, "old")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- runCmd(ctx, &out, "events", "--follow", "--nats", srv.URL()) }()
	// Publish until the follower, which may still be subscribing, prints one.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "node=new") {
		if time.Now().After(deadline) {
			t.Fatalf("follower printed nothing new:\n%s", out.String())
		}
		if err := b.PublishEvent(t.Context(), wire.NewEvent(wire.EventLockExpired, "new")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("events --follow: %v", err)
	}
	if strings.Contains(out.String(), "node=old") {
		t.Errorf("--follow without --since printed a stored event:\n%s", out.String())
	}
}

func TestEventsUnreachable(t *testing.T) {
	var out syncbuf.Buffer
	err := runCmd(t.Context(), &out, "events", "--nats", "nats://127.0.0.1:1", "--nats-connect-attempts", "1")
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("err = %v, want a clear unreachable error", err)
	}
}

func TestBenchBusJSON(t *testing.T) {
	srv := natstest.Start(t)
	var out syncbuf.Buffer
	if err := runCmd(t.Context(), &out, "bench", "bus", "--nats", srv.URL(), "--tasks", "200", "--rounds", "1", "--json"); err != nil {
		t.Fatalf("bench bus: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"ironfleet", "jetstream-raw"} {
		var r map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		if r["impl"] != want {
			t.Errorf("line %d impl = %v, want %s", i, r["impl"], want)
		}
		for _, k := range []string{"tasks_per_s", "p50_us", "p99_us"} {
			if v, ok := r[k].(float64); !ok || v <= 0 {
				t.Errorf("line %d: %s = %v, want > 0", i, k, r[k])
			}
		}
	}
}
