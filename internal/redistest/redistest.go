// Package redistest gives a test its own real redis-server.
//
// Each call to Start launches a private redis-server child process listening
// only on a unix socket under t.TempDir(), with persistence off unless asked
// for, and stops it in t.Cleanup. Nothing is shared between tests or with a
// system Redis.
//
// When redis-server is not installed the test is skipped with the reason,
// except under CI=true, where it fails: a missing server must never look green.
// `make test` installs Debian's redis-server when it is missing.
package redistest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redisproc"
)

// Server is a private redis-server owned by one test.
type Server struct {
	*redisproc.Server
}

// Option changes how Start runs the server.
type Option func(*redisproc.Config)

// WithAOF turns on the append-only file (fsync always), for tests that need
// every acknowledged write to survive a crash.
func WithAOF() Option { return func(c *redisproc.Config) { c.AOF = true } }

// WithArgs appends redis-server command-line arguments.
func WithArgs(args ...string) Option {
	return func(c *redisproc.Config) { c.Args = append(c.Args, args...) }
}

// Start runs a private redis-server for tb and stops it when tb ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := redisproc.Config{Dir: tb.TempDir()}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	srv, err := redisproc.Start(ctx, cfg)
	if errors.Is(err, redisproc.ErrNotInstalled) {
		Unavailable(tb, err)
	}
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx, false)
	})
	return &Server{Server: srv}
}

// Unavailable skips tb because a required server is missing, or fails it
// when CI=true.
func Unavailable(tb testing.TB, why error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("required server missing under CI=true: %v", why)
	}
	tb.Skipf("skipping: %v (run `make test`, which installs it)", why)
}

// Client returns a new client of the server, closed when tb ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(s.Options())
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Restart stops and starts the server on the same socket, keeping its data
// or not. Existing clients reconnect by themselves.
func (s *Server) Restart(tb testing.TB, keepData bool) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Server.Restart(ctx, keepData); err != nil {
		tb.Fatalf("redistest: restart: %v", err)
	}
}

// Crash kills the server with SIGKILL and starts it again: only what the AOF
// (if enabled) holds survives.
func (s *Server) Crash(tb testing.TB) {
	tb.Helper()
	_ = s.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.StartAgain(ctx); err != nil {
		tb.Fatalf("redistest: start after crash: %v", err)
	}
}
