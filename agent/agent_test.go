package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/agenttest"
	"github.com/ironfleet/ironfleet/internal/syncbuf"
)

func TestBackoff(t *testing.T) {
	c := LookupConfig{}
	c.defaults()
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{0, 0, time.Second}, // never below the initial pause
		{0, 0.999, 999 * time.Millisecond},
		{1, 0, time.Second},
		{1, 0.5, 1500 * time.Millisecond},
		{3, 0, 4 * time.Second},
		{3, 0.5, 6 * time.Second},
		{5, 0.999, 31984 * time.Millisecond},
		{6, 0, 30 * time.Second}, // 64 s capped at 60, then jittered into 30–60
		{6, 0.999, 59970 * time.Millisecond},
		{40, 0.5, 45 * time.Second}, // no overflow for long outages
		{1000, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		got := c.backoff(tt.n, tt.r)
		if diff := got - tt.want; diff < -time.Millisecond || diff > time.Millisecond {
			t.Errorf("backoff(%d, %v) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
		if got < c.InitialBackoff || got > c.MaxBackoff {
			t.Errorf("backoff(%d, %v) = %v, outside [%v, %v]", tt.n, tt.r, got, c.InitialBackoff, c.MaxBackoff)
		}
	}
}

func TestHeartbeatInterval(t *testing.T) {
	c := HeartbeatConfig{}
	c.defaults()
	const timeout = 300 * time.Second
	tests := []struct {
		name   string
		failed bool
		r      float64
		want   time.Duration
	}{
		{"shortest beat: 30 % of the timeout", false, 0, 90 * time.Second},
		{"middle", false, 0.5, 135 * time.Second},
		{"longest beat: 60 % of the timeout", false, 1, 180 * time.Second},
		{"shortest pause after an error", true, 0, 5 * time.Second},
		{"longest pause after an error", true, 1, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.interval(timeout, tt.failed, tt.r); (got - tt.want).Abs() > time.Microsecond {
				t.Errorf("interval(%v, %v, %v) = %v, want %v", timeout, tt.failed, tt.r, got, tt.want)
			}
		})
	}
}

// fastConfig is an agent configuration whose every pause is a millisecond,
// except the ones a test wants to prove are not taken (an hour).
func fastConfig(api string, macs ...string) Config {
	return Config{
		APIURL:      api,
		MACs:        macs,
		CallbackURL: "http://127.0.0.1:9999",
		Version:     "test-1",
		Lookup: LookupConfig{
			Timeout: 10 * time.Second, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
			ConflictPause: time.Hour,
		},
		Heartbeat: HeartbeatConfig{ErrorMin: time.Millisecond, ErrorMax: 2 * time.Millisecond},
	}
}

// runAgent runs a.Run until stop is called or the test ends; stop returns
// what Run returned.
func runAgent(t *testing.T, a *Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestLookupRetriesThenHeartbeats(t *testing.T) {
	api := agenttest.NewAPI(t)
	api.AddNode("node-1", "52:54:00:ab:cd:ef")
	api.FailLookups(http.StatusInternalServerError, http.StatusNotFound, http.StatusServiceUnavailable)
	a, err := New(&recordingMachine{}, fastConfig(api.URL, "52:54:00:12:34:56", "52:54:00:AB:CD:EF"))
	if err != nil {
		t.Fatal(err)
	}
	stop := runAgent(t, a)
	waitFor(t, "a heartbeat", func() bool { n, _ := api.LastBeat("node-1"); return n >= 1 })
	_, hb := api.LastBeat("node-1")
	token := api.Token("node-1")
	if hb.AgentToken != token || hb.CallbackURL != "http://127.0.0.1:9999" || hb.AgentVersion != "test-1" {
		t.Errorf("heartbeat = %+v, want token %q, callback http://127.0.0.1:9999, version test-1", hb, token)
	}
	if n := api.Lookups(); n != 4 {
		t.Errorf("lookups = %d, want 4 (three failures, then found)", n)
	}
	if got := a.Node().UUID; got != "node-1" {
		t.Errorf("Node().UUID = %q, want node-1", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after a successful lookup returned %v, want nil", err)
	}
}

// TestLookupConflictPausesLonger: after a 409 the agent waits the conflict
// pause, not the backoff. The backoff is an hour here, so reaching the
// heartbeat proves the conflict pause was used.
func TestLookupConflictPausesLonger(t *testing.T) {
	api := agenttest.NewAPI(t)
	api.AddNode("node-1", "52:54:00:12:34:56")
	api.FailLookups(http.StatusConflict)
	cfg := fastConfig(api.URL, "52:54:00:12:34:56")
	cfg.Lookup.InitialBackoff, cfg.Lookup.MaxBackoff, cfg.Lookup.ConflictPause = time.Hour, time.Hour, time.Millisecond
	a, err := New(&recordingMachine{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitFor(t, "a heartbeat after the 409", func() bool { n, _ := api.LastBeat("node-1"); return n >= 1 })
}

func TestLookupGivesUp(t *testing.T) {
	closed := agenttest.Listen(t)
	deadURL := "http://" + closed.Addr().String()
	_ = closed.Close()
	tests := []struct {
		name    string
		api     func(t *testing.T) string
		wantErr string
	}{
		{"node never known", func(t *testing.T) string { return agenttest.NewAPI(t).URL }, "404"},
		{"API unreachable", func(*testing.T) string { return deadURL }, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fastConfig(tt.api(t), "52:54:00:12:34:56")
			cfg.Lookup.Timeout = 50 * time.Millisecond
			a, err := New(&recordingMachine{}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Run(t.Context())
			if !errors.Is(err, ErrLookupTimeout) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want %v with the last error (%s)", err, ErrLookupTimeout, tt.wantErr)
			}
		})
	}
}

func TestLookupCancelled(t *testing.T) {
	api := agenttest.NewAPI(t)
	a, err := New(&recordingMachine{}, fastConfig(api.URL, "52:54:00:12:34:56"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	waitFor(t, "a few lookups", func() bool { return api.Lookups() >= 3 })
	cancel()
	if err := <-done; err == nil || errors.Is(err, ErrLookupTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel = %v, want context.Canceled and not a lookup timeout", err)
	}
}

// TestHeartbeatRhythm: after an error the agent beats again after the
// error pause (the regular interval is half an hour here); with a short
// heartbeat timeout it keeps beating.
func TestHeartbeatRhythm(t *testing.T) {
	t.Run("retries after errors", func(t *testing.T) {
		api := agenttest.NewAPI(t)
		api.AddNode("node-1", "52:54:00:12:34:56")
		api.FailHeartbeats(http.StatusInternalServerError, http.StatusConflict)
		a, err := New(&recordingMachine{}, fastConfig(api.URL, "52:54:00:12:34:56"))
		if err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)
		waitFor(t, "a heartbeat after two failed ones", func() bool { n, _ := api.LastBeat("node-1"); return n >= 1 })
	})
	t.Run("beats repeatedly", func(t *testing.T) {
		api := agenttest.NewAPI(t)
		api.SetHeartbeatTimeout(0.005) // 5 ms: beats 1.5–3 ms apart
		api.AddNode("node-1", "52:54:00:12:34:56")
		a, err := New(&recordingMachine{}, fastConfig(api.URL, "52:54:00:12:34:56"))
		if err != nil {
			t.Fatal(err)
		}
		runAgent(t, a)
		waitFor(t, "five heartbeats", func() bool { n, _ := api.LastBeat("node-1"); return n >= 5 })
	})
}

// TestTokenNeverLogged runs an agent through lookup, failing heartbeats
// and a failing command at debug level and looks for its token in the log.
func TestTokenNeverLogged(t *testing.T) {
	api := agenttest.NewAPI(t)
	api.SetHeartbeatTimeout(0.005)
	api.AddNode("node-1", "52:54:00:12:34:56")
	api.FailHeartbeats(http.StatusUnauthorized, http.StatusInternalServerError)
	var buf syncbuf.Buffer
	cfg := fastConfig(api.URL, "52:54:00:12:34:56")
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Commands.PowerDelay = time.Millisecond
	a, err := New(&recordingMachine{err: errors.New("no power")}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(t, a.Handler())
	runAgent(t, a)
	waitFor(t, "three heartbeats", func() bool { n, _ := api.LastBeat("node-1"); return n >= 3 })
	token := api.Token("node-1")
	c, err := protocol.NewClient(srv, token, protocol.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := c.Reboot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(t.Context(), cmd.ID, poll); !errors.Is(err, protocol.ErrMachine) {
		t.Fatalf("reboot: %v, want %v", err, protocol.ErrMachine)
	}
	log := buf.String()
	if !strings.Contains(log, "heartbeat failed") || !strings.Contains(log, "command failed") {
		t.Fatalf("log lacks the failures this test provokes:\n%s", log)
	}
	if strings.Contains(log, token) {
		t.Errorf("the agent token appears in the log:\n%s", log)
	}
}

func TestNewBadConfig(t *testing.T) {
	good := fastConfig("http://127.0.0.1:6385", "52:54:00:12:34:56")
	tests := []struct {
		name    string
		machine Machine
		edit    func(*Config)
	}{
		{"nil machine", nil, func(*Config) {}},
		{"no API URL", &recordingMachine{}, func(c *Config) { c.APIURL = "" }},
		{"API URL without scheme", &recordingMachine{}, func(c *Config) { c.APIURL = "10.0.2.2:6385" }},
		{"no callback URL", &recordingMachine{}, func(c *Config) { c.CallbackURL = "" }},
		{"no MACs", &recordingMachine{}, func(c *Config) { c.MACs = nil }},
		{"bad MAC", &recordingMachine{}, func(c *Config) { c.MACs = []string{"52:54:00:12:34"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.MACs = append([]string(nil), good.MACs...)
			tt.edit(&cfg)
			if _, err := New(tt.machine, cfg); err == nil {
				t.Errorf("New succeeded, want an error")
			}
		})
	}
}

func TestCallbackURL(t *testing.T) {
	tests := []struct {
		name   string
		listen *net.TCPAddr
		api    string
		want   string
	}{
		{"listening on one address", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 9999}, "http://10.0.2.2:6385", "http://192.0.2.7:9999"},
		{"listening on all: the route to the API", &net.TCPAddr{IP: net.IPv4zero, Port: 9999}, "http://127.0.0.1:6385", "http://127.0.0.1:9999"},
		{"https API without port", &net.TCPAddr{Port: 9999}, "https://127.0.0.1", "http://127.0.0.1:9999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CallbackURL(t.Context(), tt.api, tt.listen)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("CallbackURL = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := CallbackURL(t.Context(), "::not a url", &net.TCPAddr{Port: 1}); err == nil {
		t.Error("CallbackURL with a bad API URL succeeded")
	}
}
