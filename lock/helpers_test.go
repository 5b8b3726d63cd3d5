package lock

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// fastConfig keeps every timing knob small so real-server tests run in
// milliseconds.
func fastConfig() Config {
	return Config{
		TTL:          300 * time.Millisecond,
		Fallback:     50 * time.Millisecond,
		Attempts:     3,
		Interval:     10 * time.Millisecond,
		ClaimTimeout: 300 * time.Millisecond,
		Grace:        time.Second,
	}
}

func newClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	opts := srv.Options()
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newLocker(t testing.TB, c RedisClient, cfg Config) *Locker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := New(ctx, c, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// sendHook is a go-redis hook that sees the commands a client is about to
// send (one, or a pipeline's) and may fail them all by returning an error.
type sendHook func(cmds []redis.Cmder) error

func (h sendHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h sendHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h([]redis.Cmder{cmd}); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}
func (h sendHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h(cmds); err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// killSwitch makes every command of a client fail once flipped: a process
// that died or was cut off, as far as Redis can tell.
type killSwitch struct{ dead atomic.Bool }

var errKilled = errors.New("test: client killed")

func (k *killSwitch) hook(_ []redis.Cmder) error {
	if k.dead.Load() {
		return errKilled
	}
	return nil
}

// deafClient subscribes to a channel nobody publishes to: every wake-up
// message is lost, as when pub/sub drops them.
type deafClient struct{ *redis.Client }

func (d deafClient) Subscribe(ctx context.Context, _ ...string) *redis.PubSub {
	return d.Client.Subscribe(ctx, "test:nowhere")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lineLen is the number of live waiters in resource's line.
func lineLen(t testing.TB, l *Locker, resource string) int {
	t.Helper()
	s, err := l.Snapshot(context.Background(), resource)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return len(s.Line)
}

type acquired struct {
	lk  *Lock
	err error
}

// acquireAsync starts a patient Acquire and waits until it stands in line
// (want is the line length expected once it does).
func acquireAsync(t testing.TB, ctx context.Context, l, observer *Locker, resource string, opts *Options, want int) <-chan acquired {
	t.Helper()
	ch := make(chan acquired, 1)
	go func() {
		lk, err := l.Acquire(ctx, resource, opts)
		ch <- acquired{lk, err}
	}()
	waitFor(t, 5*time.Second, "waiter to join the line", func() bool { return lineLen(t, observer, resource) >= want })
	return ch
}

func recv(t testing.TB, ch <-chan acquired, what string) *Lock {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("%s: Acquire: %v", what, a.err)
		}
		return a.lk
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not granted within 10s", what)
	}
	return nil
}

func mustRelease(t testing.TB, lk *Lock) {
	t.Helper()
	if err := lk.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// freeze stops the lock's refresher as a SIGSTOP would: no more renewals,
// and nothing tells the holder.
func (lk *Lock) freeze() { lk.pause <- struct{}{} }

// newKillableClient is a client whose commands all fail once ks is flipped.
func newKillableClient(t testing.TB, srv *redistest.Server) (*redis.Client, *killSwitch) {
	t.Helper()
	c := newClient(t, srv)
	ks := &killSwitch{}
	c.AddHook(sendHook(ks.hook))
	return c, ks
}
