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

// killSwitch is a go-redis hook that makes every command fail once flipped:
// a process that died or was cut off, as far as Redis can tell.
type killSwitch struct{ dead atomic.Bool }

var errKilled = errors.New("test: client killed")

func (k *killSwitch) DialHook(next redis.DialHook) redis.DialHook { return next }
func (k *killSwitch) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if k.dead.Load() {
			cmd.SetErr(errKilled)
			return errKilled
		}
		return next(ctx, cmd)
	}
}
func (k *killSwitch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if k.dead.Load() {
			for _, c := range cmds {
				c.SetErr(errKilled)
			}
			return errKilled
		}
		return next(ctx, cmds)
	}
}

// commandCounter is a go-redis hook counting the commands a client sends
// (each command of a pipeline counts).
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
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
	c.AddHook(ks)
	return c, ks
}
