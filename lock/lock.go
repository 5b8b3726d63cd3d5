package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// RedisClient is what the lock needs of a go-redis client: scripts,
// pipelines, one pub/sub subscription and a read of the resource index. *redis.Client and
// *redis.ClusterClient satisfy it.
type RedisClient interface {
	redis.Scripter
	Pipeline() redis.Pipeliner
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
	ZRangeWithScores(ctx context.Context, key string, start, stop int64) *redis.ZSliceCmd
}

// Config holds a Locker's settings. Every zero value means the documented default.
type Config struct {
	// Prefix of every key and channel; empty means "ifl:lock".
	Prefix string
	// TTL is the lease of holders and waiters: a holder or waiter that stops
	// refreshing (dead, paused) stops blocking others within TTL. Zero means 15s.
	TTL time.Duration
	// Fallback bounds how long a waiter goes without re-checking the lock
	// when no wake-up message arrives (pub/sub is fire-and-forget). Zero
	// means min(1s, TTL/3); it is never more than TTL/3, because re-checking
	// is also how a waiter renews its lease.
	Fallback time.Duration
	// Attempts and Interval are the standard mode's retries: Attempts tries,
	// Interval apart, before ErrLocked. Zero means Ironic's 3 × 1s.
	Attempts int
	Interval time.Duration
	// ClaimTimeout is how long a handed-off or reserved ticket may stay
	// unclaimed before it expires and the lock moves on. Zero means 30s.
	ClaimTimeout time.Duration
	// Grace is how long a line's keys outlive the leases in it (at least
	// half of Grace, at most all of it), so that a fleet that died leaves
	// nothing behind, yet dead waiters are still found and counted; zero
	// means 60s.
	Grace time.Duration
	// Holder names this process in snapshots and ErrLocked; empty means
	// "<hostname>:<pid>".
	Holder string
	// Registerer receives the lock's Prometheus metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger receives debug logs; nil means none.
	Logger *slog.Logger
}

// Limits on input.
const (
	// MaxResourceLen is the longest resource name accepted.
	MaxResourceLen = 256
	// MaxTicketLen is the longest ticket accepted.
	MaxTicketLen = 128
)

// Locker acquires locks on resources. It is safe for concurrent use; one per
// process is enough. Close it to stop its wake-up subscription.
type Locker struct {
	client  RedisClient
	cfg     Config
	id      string
	channel string
	seq     atomic.Uint64
	metrics *metrics

	mu      sync.Mutex
	waiters map[string]chan uint64 // ticket -> wake (token, or 0 for "re-check")
	closed  bool

	pubsub *redis.PubSub
	stop   context.CancelFunc
	done   chan struct{}
}

// New returns a Locker on client and subscribes to its wake-up channel. The
// client must respect context deadlines (go-redis: ContextTimeoutEnabled),
// so that no call outlives its caller's deadline.
func New(ctx context.Context, client RedisClient, cfg Config) (*Locker, error) {
	if client == nil {
		return nil, invalid("nil redis client")
	}
	if err := checkContextTimeouts(client); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	l := &Locker{
		client:  client,
		cfg:     cfg,
		id:      randomHex(8),
		metrics: m,
		waiters: make(map[string]chan uint64),
		done:    make(chan struct{}),
	}
	l.channel = cfg.Prefix + ":wake:" + l.id
	l.pubsub = client.Subscribe(ctx, l.channel)
	// Wait for the subscription to be confirmed: a wake-up published before
	// it would be lost (the fallback timer would still catch it, late).
	if _, err := l.pubsub.Receive(ctx); err != nil {
		_ = l.pubsub.Close()
		return nil, fmt.Errorf("lock: subscribe to wake-ups: %w", err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	go l.dispatch(sctx)
	return l, nil
}

func checkContextTimeouts(c RedisClient) error {
	var enabled = true
	switch rc := c.(type) {
	case *redis.Client:
		enabled = rc.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		enabled = rc.Options().ContextTimeoutEnabled
	}
	if !enabled {
		return invalid("redis client must set ContextTimeoutEnabled so calls end at the caller's deadline")
	}
	return nil
}

func (c *Config) validate() error {
	for name, d := range map[string]time.Duration{
		"TTL": c.TTL, "Fallback": c.Fallback, "Interval": c.Interval,
		"ClaimTimeout": c.ClaimTimeout, "Grace": c.Grace,
	} {
		if d < 0 {
			return invalid("Config.%s is negative (%s)", name, d)
		}
	}
	if c.TTL != 0 && c.TTL < 10*time.Millisecond {
		return invalid("Config.TTL %s is below 10ms", c.TTL)
	}
	if c.Attempts < 0 {
		return invalid("Config.Attempts is negative (%d)", c.Attempts)
	}
	if strings.ContainsAny(c.Prefix, "{} ") {
		return invalid("Config.Prefix %q contains braces or spaces", c.Prefix)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "ifl:lock"
	}
	if c.TTL == 0 {
		c.TTL = 15 * time.Second
	}
	if c.Fallback == 0 || c.Fallback > c.TTL/3 {
		c.Fallback = min(time.Second, c.TTL/3)
		if c.Fallback == 0 {
			c.Fallback = c.TTL / 3
		}
	}
	if c.Attempts == 0 {
		c.Attempts = 3
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = 30 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = time.Minute
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		c.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Close stops the wake-up subscription. Locks already held keep refreshing
// until released; waiters still waiting fall back to polling.
func (l *Locker) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.stop()
	err := l.pubsub.Close()
	<-l.done
	return err
}

// dispatch delivers wake-ups to the waiters of this process. A wake-up names
// the ticket granted and its token; after the subscription reconnects (a
// message may have been lost meanwhile) every waiter is told to re-check.
// It reads the subscription itself, so a wake-up costs one goroutine switch.
func (l *Locker) dispatch(ctx context.Context) {
	defer close(l.done)
	for {
		m, err := l.pubsub.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The connection broke: go-redis reconnects and subscribes
			// again on the next Receive; waiters re-check meanwhile.
			l.wakeAll()
			if wait.Sleep(ctx, 10*time.Millisecond) != nil {
				return
			}
			continue
		}
		switch m := m.(type) {
		case *redis.Message:
			ticket, tok, _ := strings.Cut(m.Payload, " ")
			token, _ := strconv.ParseUint(tok, 10, 64)
			l.wake(ticket, token)
		case *redis.Subscription:
			l.wakeAll()
		}
	}
}

func (l *Locker) wake(ticket string, token uint64) {
	l.mu.Lock()
	ch := l.waiters[ticket]
	l.mu.Unlock()
	if ch != nil {
		select {
		case ch <- token:
		default:
		}
	}
}

func (l *Locker) wakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.waiters {
		select {
		case ch <- 0:
		default:
		}
	}
}

func (l *Locker) register(ticket string) (chan uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	ch := make(chan uint64, 1)
	l.waiters[ticket] = ch
	return ch, nil
}

func (l *Locker) unregister(ticket string) {
	l.mu.Lock()
	delete(l.waiters, ticket)
	l.mu.Unlock()
}

// keys are the three keys of one resource, sharing its hash tag.
func (l *Locker) keys(resource string) []string {
	base := l.cfg.Prefix + ":{" + resource + "}:"
	return []string{base + "owner", base + "line", base + "waiters"}
}

func (l *Locker) indexKey() string { return l.cfg.Prefix + ":index" }

// newClaimer names one Acquire call: the owner identity behind a ticket.
func (l *Locker) newClaimer() string {
	return l.id + "." + strconv.FormatUint(l.seq.Add(1), 36)
}

// NewTicket returns a fresh random ticket: 128 bits, hex.
func NewTicket() string { return randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validResource(r string) error {
	switch {
	case r == "":
		return invalid("empty resource name")
	case len(r) > MaxResourceLen:
		return invalid("resource name of %d bytes exceeds %d", len(r), MaxResourceLen)
	case strings.ContainsAny(r, "{}") || strings.ContainsFunc(r, isSpaceOrControl):
		return invalid("resource name %q contains braces, spaces or control characters", r)
	}
	return nil
}

func validTicket(t string) error {
	switch {
	case t == "":
		return invalid("empty ticket")
	case len(t) > MaxTicketLen:
		return invalid("ticket of %d bytes exceeds %d", len(t), MaxTicketLen)
	case strings.ContainsFunc(t, isSpaceOrControl):
		return invalid("ticket %q contains spaces or control characters", t)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

func ms(d time.Duration) int64 { return d.Milliseconds() }
