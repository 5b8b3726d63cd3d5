package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an in-process NATS server with JetStream, as
// `ironfleet dev` runs it. The zero value listens on a random loopback port
// and keeps JetStream data in a temporary directory chosen by the caller.
type EmbeddedConfig struct {
	// StoreDir is JetStream's data directory. Required.
	StoreDir string
	// Host to listen on; empty means 127.0.0.1.
	Host string
	// Port to listen on; 0 means a random free port.
	Port int
	// ServerName names the server in JetStream; empty means "ironfleet-dev".
	ServerName string
	// ReadyTimeout bounds start-up; zero means 10s.
	ReadyTimeout time.Duration
	// SyncInterval is how often JetStream fsyncs its files. Zero means on
	// every write (nats-server's sync_interval: always): an acknowledged
	// task or inventory write survives a power cut, at the cost of a disk
	// flush per write. A positive interval (the server's own default is 2m)
	// trades the last interval's writes, on a machine crash, for throughput.
	SyncInterval time.Duration
}

// Embedded is a running in-process NATS server.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts an in-process NATS server with JetStream and waits
// until it accepts connections.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("transport: EmbeddedConfig.StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "ironfleet-dev"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	syncInterval, syncAlways := cfg.SyncInterval, cfg.SyncInterval <= 0
	if syncAlways {
		syncInterval = 2 * time.Minute // only paces flushes of what is already synced
	}
	srv, err := server.NewServer(&server.Options{
		ServerName:   cfg.ServerName,
		Host:         cfg.Host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		NoLog:        true,
		NoSigs:       true,
		SyncAlways:   syncAlways,
		SyncInterval: syncInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("transport: embedded server: %w", err)
	}
	srv.Start()
	deadline := cfg.ReadyTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadline {
		deadline = time.Until(d)
	}
	if !srv.ReadyForConnections(deadline) {
		srv.Shutdown()
		return nil, fmt.Errorf("transport: embedded server not ready within %s", deadline)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string {
	addr := e.srv.Addr().(*net.TCPAddr)
	return "nats://" + net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port))
}

// Shutdown stops the server and waits until it has flushed JetStream state.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
