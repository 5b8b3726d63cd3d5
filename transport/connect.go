package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// ErrUnreachable is returned by Connect when no server answered within the
// configured attempts.
var ErrUnreachable = errors.New("transport: NATS unreachable")

// DefaultConnectAttempts is how many times Connect tries at start when
// ConnectConfig.Attempts is 0.
const DefaultConnectAttempts = 5

// ConnectConfig says how to reach an external NATS cluster. Only URLs is required.
type ConnectConfig struct {
	// URLs are the servers' client URLs (nats://host:4222, tls://…). Required.
	URLs []string
	// Name is the client name shown by the server; empty means "ironfleet".
	Name string
	// CredsFile is a NATS credentials file (JWT + nkey seed); empty means none.
	CredsFile string
	// NKeySeedFile is an nkey seed file; empty means none.
	NKeySeedFile string
	// User and Password, or Token, for plain authentication; empty means none.
	User, Password, Token string
	// TLS, when set, is the client TLS configuration (CA, client cert). A
	// tls:// URL without it uses the system roots.
	TLS *tls.Config
	// Attempts bounds the initial connection attempts; 0 means
	// DefaultConnectAttempts.
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after each
	// further one; 0 means 250ms.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts; 0 means 5s.
	MaxBackoff time.Duration
	// ReconnectWait is the pause between reconnect attempts once connected
	// (the connection then retries forever); 0 means 1s.
	ReconnectWait time.Duration
	// ReconnectBufSize is how many bytes of publishes are buffered while
	// reconnecting; 0 means 8 MiB.
	ReconnectBufSize int
	// Logger receives connection state changes; nil means none.
	Logger *slog.Logger
}

// Connect dials NATS with bounded retry and exponential backoff: an
// unreachable server at start is a clear error after cfg.Attempts, not a hang.
// Once connected, the client reconnects forever and buffers publishes
// meanwhile, so publishers and consumers resume after a server restart.
func Connect(ctx context.Context, cfg ConnectConfig) (*nats.Conn, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("transport: ConnectConfig.URLs is empty")
	}
	if cfg.Name == "" {
		cfg.Name = "ironfleet"
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultConnectAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = time.Second
	}
	if cfg.ReconnectBufSize <= 0 {
		cfg.ReconnectBufSize = 8 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectBufSize(cfg.ReconnectBufSize),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("transport: nkey seed %s: %w", cfg.NKeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	urls := strings.Join(cfg.URLs, ",")
	backoff := cfg.Backoff
	var last error
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(urls, opts...)
		if err == nil {
			return nc, nil
		}
		last = err
		if attempt >= cfg.Attempts {
			break
		}
		log.Warn("nats connect failed, retrying", "attempt", attempt, "wait", backoff, "err", err)
		if wait.Sleep(ctx, backoff) != nil {
			return nil, fmt.Errorf("%w: %s: %w (gave up: %w)", ErrUnreachable, urls, last, context.Cause(ctx))
		}
		backoff = min(2*backoff, cfg.MaxBackoff)
	}
	return nil, fmt.Errorf("%w: %s after %d attempts: %w", ErrUnreachable, urls, cfg.Attempts, last)
}
