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

// Defaults of Config, applied where a field is zero.
const (
	// DefaultPrefix prefixes every key and channel.
	DefaultPrefix = "ifl:lock"
	// DefaultTTL is the lease of holders and waiters.
	DefaultTTL = 15 * time.Second
	// DefaultAttempts and DefaultInterval are the standard mode's retries:
	// Ironic's 3 × 1s.
	DefaultAttempts = 3
	DefaultInterval = time.Second
	// DefaultClaimTimeout is how long a handed-off or reserved ticket may
	// stay unclaimed.
	DefaultClaimTimeout = 30 * time.Second
	// DefaultGrace is how long a line's keys outlive the leases in it.
	DefaultGrace = time.Minute
	// DefaultTicketMemory is how long a spent ticket is remembered: well
	// past a task bus's redeliveries of a task whose ack was lost (with
	// ironfleet's bus, up to 5 deliveries 30s apart).
	DefaultTicketMemory = 10 * time.Minute
	// DefaultFallback bounds a waiter's wait between re-checks when no
	// wake-up comes (never more than a third of its lease).
	DefaultFallback = time.Second
)

// Config holds a Locker's settings. Every zero value means the documented default.
type Config struct {
	// Prefix of every key and channel; empty means DefaultPrefix.
	Prefix string
	// TTL is the lease of holders and waiters: a holder or waiter that stops
	// refreshing (dead, paused) stops blocking others within TTL. Zero means
	// DefaultTTL.
	TTL time.Duration
	// Fallback bounds how long a waiter goes without re-checking the lock
	// when no wake-up message arrives (pub/sub is fire-and-forget). Zero
	// means 1s. A waiter never waits more than a third of its own lease
	// (Options.TTL, or TTL) between re-checks, whatever Fallback says,
	// because re-checking is also how it renews its place in line.
	Fallback time.Duration
	// Attempts and Interval are the standard mode's retries: Attempts tries,
	// Interval apart, before ErrLocked. Zero means DefaultAttempts and
	// DefaultInterval, Ironic's 3 × 1s.
	Attempts int
	Interval time.Duration
	// ClaimTimeout is how long a handed-off or reserved ticket may stay
	// unclaimed before it expires and the lock moves on. Zero means
	// DefaultClaimTimeout.
	ClaimTimeout time.Duration
	// TicketMemory is how long a ticket stays spent after its claimer
	// released the lock or handed it on: claiming it again within this
	// window fails with ErrTicketUsed. Zero means DefaultTicketMemory; it
	// is never less than ClaimTimeout.
	TicketMemory time.Duration
	// Grace is how long a line's keys outlive the leases in it (at least
	// half of Grace, at most all of it), so that a fleet that died leaves
	// nothing behind, yet dead waiters are still found and counted; zero
	// means DefaultGrace.
	Grace time.Duration
	// Holder names this Locker's owner in snapshots and ErrLocked, and is
	// the one place it is set (WithHolder derives Lockers with other
	// names); empty means "<hostname>:<pid>".
	Holder string
	// Registerer receives the lock's Prometheus metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger receives debug logs; nil means none.
	Logger *slog.Logger
	// OnChange, if set, is told of each change this Locker (and those
	// WithHolder derives from it) makes to a lock: granted, queued, left,
	// released, handed off — after the Redis script that made it answered,
	// never inside one, on the caller's goroutine. It must not block or
	// call the Locker: it runs on the lock's path (hand the Change to a
	// buffered channel and return). Changes nobody here made are not
	// reported: another process's, and a lease that lapsed on the server.
	OnChange func(Change)
}

// Limits on input.
const (
	// MaxResourceLen is the longest resource name accepted.
	MaxResourceLen = 256
	// MaxTicketLen is the longest ticket accepted.
	MaxTicketLen = 128
)

// Locker acquires locks on resources as its holder. It is safe for
// concurrent use; one per process is enough (WithHolder gives the other
// components of a process their own names on it). Close it to stop its
// wake-up subscription.
type Locker struct {
	*core
	// holder names the owner in snapshots and ErrLocked: Config.Holder, or
	// what WithHolder said.
	holder string
}

// core is what the Lockers made by WithHolder share: the connection, the
// settings, the wake-up subscription and the waiters it wakes, the metrics.
type core struct {
	client  RedisClient
	cfg     Config
	id      string
	channel string
	seq     atomic.Uint64
	metrics *metrics

	mu sync.Mutex
	// waiters maps the ticket of each patient Acquire of this process to
	// the channel its wake-ups are posted on (see post). Only dispatch
	// posts, always under mu.
	waiters map[string]chan wakeUp
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
	l := &Locker{core: &core{
		client:  client,
		cfg:     cfg,
		id:      randomHex(8),
		metrics: m,
		waiters: make(map[string]chan wakeUp),
		done:    make(chan struct{}),
	}, holder: cfg.Holder}
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

// WithHolder returns a Locker that acquires (and reserves) as holder and
// shares everything else with l: its connection, settings, wake-up
// subscription and metrics. It is how several components of one process,
// each known by its own name (a dev fleet's API and conductors), take locks
// without a subscription each. Closing either Locker closes both. An empty
// holder means l's.
func (l *Locker) WithHolder(holder string) *Locker {
	if holder == "" {
		return l
	}
	return &Locker{core: l.core, holder: holder}
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
		"ClaimTimeout": c.ClaimTimeout, "TicketMemory": c.TicketMemory, "Grace": c.Grace,
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
		c.Prefix = DefaultPrefix
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Fallback == 0 {
		c.Fallback = DefaultFallback
	}
	if c.Attempts == 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = DefaultClaimTimeout
	}
	if c.TicketMemory == 0 {
		c.TicketMemory = DefaultTicketMemory
	}
	c.TicketMemory = max(c.TicketMemory, c.ClaimTimeout)
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		c.Holder = host + ":" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// fallbackFor is how long a waiter whose lease is ttl waits at most between
// re-checks: Fallback, but never more than ttl/3, since its re-checks are
// what renew its place in line.
func (c *Config) fallbackFor(ttl time.Duration) time.Duration {
	return min(c.Fallback, ttl/3)
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
// the ticket granted, and only that waiter is told (see wakeUp for what it
// may take from it); after the subscription reconnects (a message may have
// been lost meanwhile) every waiter is told to re-check. It reads the
// subscription itself, so a wake-up costs one goroutine switch.
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
			if !sleepCtx(ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		switch m := m.(type) {
		case *redis.Message:
			ticket, w := parseWake(m.Payload)
			l.wake(ticket, w)
		case *redis.Subscription:
			l.wakeAll()
		}
	}
}

func (l *Locker) wake(ticket string, w wakeUp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch := l.waiters[ticket]; ch != nil {
		post(ch, w)
	}
}

func (l *Locker) wakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.waiters {
		post(ch, wakeUp{})
	}
}

func (l *Locker) register(ticket string) (chan wakeUp, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	ch := make(chan wakeUp, 1)
	l.waiters[ticket] = ch
	return ch, nil
}

// unregister forgets the waiter behind ch, unless another Acquire of this
// process has registered the same ticket since (a task delivered twice):
// that one's wake-ups must still reach it.
func (l *Locker) unregister(ticket string, ch chan wakeUp) {
	l.mu.Lock()
	if l.waiters[ticket] == ch {
		delete(l.waiters, ticket)
	}
	l.mu.Unlock()
}

// keys are the four keys of one resource, sharing its hash tag.
func (l *Locker) keys(resource string) []string {
	base := l.cfg.Prefix + ":{" + resource + "}:"
	return []string{base + "owner", base + "line", base + "waiters", base + "used"}
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
