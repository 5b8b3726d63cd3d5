package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultSentinelBinary is the redis-sentinel executable run when
// SentinelConfig.Binary is empty, looked up on PATH.
const DefaultSentinelBinary = "redis-sentinel"

// SentinelConfig says how to run a redis-sentinel watching one master. Its
// zero durations mean Sentinel's own defaults (30 s down-after, 3 min
// failover timeout): tests set them short.
type SentinelConfig struct {
	// Dir holds the config file (Sentinel rewrites it as it learns the
	// topology), the socket and the log. Required.
	Dir string
	// Binary is the redis-sentinel executable; empty means
	// DefaultSentinelBinary.
	Binary string
	// Port is the TCP port on 127.0.0.1 where clients and the other
	// Sentinels reach this one. Required (FreePorts finds some).
	Port int
	// MasterName names the monitored master, as clients ask for it. Required.
	MasterName string
	// MasterAddr is the master's host:port at start. Required.
	MasterAddr string
	// Quorum is how many Sentinels must agree the master is down before a
	// failover; zero means 1.
	Quorum int
	// DownAfter is how long the master may go without answering before this
	// Sentinel thinks it down (down-after-milliseconds).
	DownAfter time.Duration
	// FailoverTimeout bounds one failover attempt; a Sentinel waits twice
	// that before trying again on the same master, and as long before it
	// points a replica that follows another address back at the master it
	// knows (failover-timeout).
	FailoverTimeout time.Duration
	// StartTimeout bounds how long StartSentinel waits for the first PING;
	// zero means 10s.
	StartTimeout time.Duration
}

// StartSentinel writes a sentinel.conf into cfg.Dir, launches
// redis-sentinel on it and waits until it answers PING. The returned Server
// is stopped, killed and started again like a redis-server; Addr is where
// clients reach it.
func StartSentinel(ctx context.Context, cfg SentinelConfig) (*Server, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("redisproc: SentinelConfig.Dir is required")
	case cfg.Port == 0:
		return nil, errors.New("redisproc: SentinelConfig.Port is required")
	case cfg.MasterName == "" || strings.ContainsFunc(cfg.MasterName, isSpace):
		return nil, fmt.Errorf("redisproc: SentinelConfig.MasterName %q is empty or has spaces", cfg.MasterName)
	}
	host, port, err := net.SplitHostPort(cfg.MasterAddr)
	if err != nil {
		return nil, fmt.Errorf("redisproc: SentinelConfig.MasterAddr: %w", err)
	}
	if cfg.Binary == "" {
		cfg.Binary = DefaultSentinelBinary
	}
	if err := lookPath(cfg.Binary, "redis-sentinel"); err != nil {
		return nil, err
	}
	if cfg.Quorum <= 0 {
		cfg.Quorum = 1
	}
	s := newServer(Config{Dir: cfg.Dir, Binary: cfg.Binary, Port: cfg.Port, StartTimeout: cfg.StartTimeout}, "sentinel.sock")
	conf := filepath.Join(cfg.Dir, "sentinel.conf")
	lines := []string{
		"port " + strconv.Itoa(cfg.Port),
		"bind 127.0.0.1",
		"unixsocket " + s.sock,
		"unixsocketperm 700",
		"dir " + cfg.Dir,
		"logfile " + filepath.Join(cfg.Dir, "sentinel.log"),
		"daemonize no",
		fmt.Sprintf("sentinel monitor %s %s %s %d", cfg.MasterName, host, port, cfg.Quorum),
	}
	if cfg.DownAfter > 0 {
		lines = append(lines, fmt.Sprintf("sentinel down-after-milliseconds %s %d", cfg.MasterName, cfg.DownAfter.Milliseconds()))
	}
	if cfg.FailoverTimeout > 0 {
		lines = append(lines, fmt.Sprintf("sentinel failover-timeout %s %d", cfg.MasterName, cfg.FailoverTimeout.Milliseconds()))
	}
	// Sentinel rewrites its config file, so it must be writable.
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("redisproc: write %s: %w", conf, err)
	}
	s.argv = func() []string { return []string{conf} }
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// FreePorts returns n distinct TCP ports of 127.0.0.1 that were free a
// moment ago, for servers that must listen on TCP (replication and Sentinel
// do): each is held until all are found, so none is returned twice.
func FreePorts(ctx context.Context, n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("redisproc: find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isSpace(r rune) bool { return r <= ' ' }
