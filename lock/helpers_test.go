package lock

import (
	"context"
	"errors"
	"sync"
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

// errKilled is what a cut client's commands fail with.
var errKilled = errors.New("test: client cut off")

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

// notGranted fails t if the Acquire behind ch (from acquireAsync) has
// returned; why says what should still hold it back.
func notGranted(t testing.TB, ch <-chan acquired, what, why string) {
	t.Helper()
	select {
	case a := <-ch:
		t.Fatalf("%s returned (token %d, err %v) %s", what, tokenOf(a.lk), a.err, why)
	default:
	}
}

// grantedInTurn checks the order of two waiters once the lock they wait
// for is released: first is granted while second still waits, and second
// once first releases.
func grantedInTurn(t testing.TB, first, second <-chan acquired, firstName, secondName string) {
	t.Helper()
	lk := recv(t, first, firstName)
	notGranted(t, second, secondName, "before "+firstName+" released")
	mustRelease(t, lk)
	mustRelease(t, recv(t, second, secondName))
}

func tokenOf(lk *Lock) uint64 {
	if lk == nil {
		return 0
	}
	return lk.Token()
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

// faults injects faults into one client's commands (hooks do not see its
// pub/sub connection, which stays up): cut fails every command at once, as
// a broken connection would; block holds every command until unblocked or
// its context ends, as a stalled network or a frozen process would.
type faults struct {
	mu      sync.Mutex
	cut     bool
	blocked chan struct{} // non-nil while blocked; closed to unblock
	// sent counts the commands let through, failed the commands cut, held
	// the commands blocked now; a new connection's handshake (HELLO, CLIENT
	// SETINFO) is not counted.
	sent, failed, held atomic.Int64
	// late is how many of the next calls (a command or a pipeline) get
	// their reply only after lateBy, as from a process that stalled after
	// sending them.
	late   atomic.Int64
	lateBy time.Duration
	// lose is how many of the next calls run on the server but get no
	// reply (errKilled instead), as when a connection breaks after sending.
	lose atomic.Int64
	// ran counts the commands that ran on the server (their reply lost or
	// not), not counting a new connection's handshake.
	ran atomic.Int64
}

// newFaultyClient is a client whose commands f can cut or block.
func newFaultyClient(t testing.TB, srv *redistest.Server) (*redis.Client, *faults) {
	t.Helper()
	c := newClient(t, srv)
	f := &faults{}
	c.AddHook(f)
	return c, f
}

// setCut cuts the client's commands off (true) or restores them.
func (f *faults) setCut(cut bool) {
	f.mu.Lock()
	f.cut = cut
	f.mu.Unlock()
}

// faulty reports whether the client's commands are cut or blocked now.
func (f *faults) faulty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut || f.blocked != nil
}

// block holds the client's commands until the returned function is called.
func (f *faults) block() (unblock func()) {
	ch := make(chan struct{})
	f.mu.Lock()
	f.blocked = ch
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		if f.blocked == ch {
			f.blocked = nil
		}
		f.mu.Unlock()
		close(ch)
	}
}

// counted is how many of cmds are not a new connection's handshake.
func counted(cmds ...redis.Cmder) int {
	n := 0
	for _, c := range cmds {
		if name := c.Name(); name != "hello" && name != "client" {
			n++
		}
	}
	return n
}

func (f *faults) gate(ctx context.Context, cmds ...redis.Cmder) error {
	n := counted(cmds...)
	f.mu.Lock()
	cut, blocked := f.cut, f.blocked
	f.mu.Unlock()
	if blocked != nil {
		f.held.Add(int64(n))
		select {
		case <-blocked:
		case <-ctx.Done():
		}
		f.held.Add(-int64(n))
		if err := ctx.Err(); err != nil {
			return err
		}
		return f.gate(ctx, cmds...)
	}
	if cut {
		f.failed.Add(int64(n))
		return errKilled
	}
	f.sent.Add(int64(n))
	return nil
}

func (f *faults) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *faults) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := f.gate(ctx, cmd); err != nil {
			cmd.SetErr(err)
			return err
		}
		defer f.stall()
		if err := next(ctx, cmd); err != nil {
			return err
		}
		return f.loseReply(cmd)
	}
}
func (f *faults) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := f.gate(ctx, cmds...); err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		defer f.stall()
		if err := next(ctx, cmds); err != nil {
			return err
		}
		return f.loseReply(cmds...)
	}
}

// loseReply counts the commands of a call that ran and turns its reply
// into errKilled, if one of the next calls is to lose its reply (a new
// connection's handshake is neither counted nor lost).
func (f *faults) loseReply(cmds ...redis.Cmder) error {
	n := counted(cmds...)
	if n == 0 {
		return nil
	}
	f.ran.Add(int64(n))
	if f.lose.Add(-1) < 0 {
		f.lose.Add(1)
		return nil
	}
	for _, c := range cmds {
		c.SetErr(errKilled)
	}
	return errKilled
}

func (f *faults) stall() {
	if f.late.Add(-1) >= 0 {
		time.Sleep(f.lateBy)
	} else {
		f.late.Add(1)
	}
}
