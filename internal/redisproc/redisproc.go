// Package redisproc runs a private redis-server (or redis-sentinel) as a
// child process.
//
// It is what `ironfleet dev` and the test harness (package redistest) use to
// get a real Redis without touching any system-wide instance: the server
// listens only on a unix socket inside its own directory (and on a loopback
// TCP port when asked: replicas and Sentinels reach each other over TCP),
// writes nothing to disk unless persistence is asked for, and dies with its
// parent.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotInstalled is returned by Start and StartSentinel when the server's
// binary is not found; the error wrapping it names the binary and the Debian
// package that has it.
var ErrNotInstalled = errors.New("redisproc: server binary not found on PATH")

// lookPath finds binary, or says which Debian package installs it.
func lookPath(binary, pkg string) error {
	if _, err := exec.LookPath(binary); err != nil {
		return fmt.Errorf("%w: %s (Debian: apt-get install %s): %w", ErrNotInstalled, binary, pkg, err)
	}
	return nil
}

// DefaultBinary is the redis-server executable run when Config.Binary is
// empty, looked up on PATH.
const DefaultBinary = "redis-server"

// Config says how to run the server. The zero value runs a volatile server
// (no RDB snapshots, no AOF) on a unix socket in Dir.
type Config struct {
	// Dir holds the socket, the log and any data files. Required.
	Dir string
	// Binary is the redis-server executable; empty means DefaultBinary.
	Binary string
	// Port is the TCP port to listen on as well, on 127.0.0.1; 0 means unix
	// socket only.
	Port int
	// AOF turns on the append-only file with fsync on every write, so that a
	// restart keeps every acknowledged write.
	AOF bool
	// AOFEverySecond, with AOF, fsyncs the file once a second (appendfsync
	// everysec, Redis's own default) instead of on every write: every write
	// still reaches the file at once, so a crash of redis-server alone
	// loses nothing, and a crash of the machine loses up to the last
	// second's writes.
	AOFEverySecond bool
	// StartTimeout bounds how long Start waits for the first PING; zero means 10s.
	StartTimeout time.Duration
	// Args are appended to the command line (e.g. "--maxmemory", "64mb").
	Args []string
}

// Server is a running redis-server (or redis-sentinel) child process.
type Server struct {
	cfg  Config
	sock string
	// argv is the command line after the binary.
	argv func() []string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait's result, valid after done
}

// Start launches redis-server and waits until it answers PING.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("redisproc: Config.Dir is required")
	}
	if cfg.Binary == "" {
		cfg.Binary = DefaultBinary
	}
	if err := lookPath(cfg.Binary, "redis-server"); err != nil {
		return nil, err
	}
	s := newServer(cfg, "redis.sock")
	s.argv = s.args
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(cfg Config, sock string) *Server {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	return &Server{cfg: cfg, sock: filepath.Join(cfg.Dir, sock)}
}

// Socket is the unix socket path the server listens on.
func (s *Server) Socket() string { return s.sock }

// Addr is the server's TCP address, 127.0.0.1:Port, or "" when it listens
// on its unix socket only.
func (s *Server) Addr() string {
	if s.cfg.Port == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.Port))
}

// URL is a go-redis URL for the server (unix:// or redis://).
func (s *Server) URL() string {
	if s.cfg.Port != 0 {
		return "redis://" + s.Addr() + "/0"
	}
	return "unix://" + s.sock
}

// Options returns go-redis options for a client of this server.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Network: "unix", Addr: s.sock}
}

// DataDir is where the server keeps dump.rdb and the AOF.
func (s *Server) DataDir() string { return s.cfg.Dir }

func (s *Server) args() []string {
	a := []string{
		"--port", strconv.Itoa(s.cfg.Port),
		"--bind", "127.0.0.1",
		"--unixsocket", s.sock,
		"--unixsocketperm", "700",
		"--dir", s.cfg.Dir,
		"--dbfilename", "dump.rdb",
		"--save", "",
		"--logfile", filepath.Join(s.cfg.Dir, "redis.log"),
		"--daemonize", "no",
		"--protected-mode", "yes",
	}
	switch {
	case s.cfg.AOF && s.cfg.AOFEverySecond:
		a = append(a, "--appendonly", "yes", "--appendfsync", "everysec")
	case s.cfg.AOF:
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	default:
		a = append(a, "--appendonly", "no")
	}
	return append(a, s.cfg.Args...)
}

func (s *Server) start(ctx context.Context) error {
	_ = os.Remove(s.sock)
	//nolint:noctx // the server outlives the start context; Stop and Kill end it.
	cmd := exec.Command(s.cfg.Binary, s.argv()...)
	// The server must not outlive us, even if we are killed: the kernel
	// sends it SIGKILL when this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisproc: start %s: %w", s.cfg.Binary, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Kill()
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("redisproc: %s exited during start (%w); see its log in %s", s.cfg.Binary, s.err, s.cfg.Dir)
		case <-ctx.Done():
			return fmt.Errorf("redisproc: %s not answering PING on %s: %w (last error: %w)", s.cfg.Binary, s.sock, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Stop shuts the server down. With save, it writes an RDB snapshot first so
// that a later Restart comes back with the data; without, the data is gone.
func (s *Server) Stop(ctx context.Context, save bool) error {
	if s.exited() {
		return nil
	}
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: s.sock, MaxRetries: -1})
	defer c.Close()
	if save {
		_ = c.ShutdownSave(ctx).Err() // the reply is the connection closing
	} else {
		_ = c.ShutdownNoSave(ctx).Err()
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		_ = s.Kill()
		return fmt.Errorf("redisproc: shutdown: %w", ctx.Err())
	case <-time.After(10 * time.Second):
		_ = s.Kill()
	}
	if !save {
		_ = os.Remove(filepath.Join(s.cfg.Dir, "dump.rdb"))
		_ = os.RemoveAll(filepath.Join(s.cfg.Dir, "appendonlydir"))
	}
	return nil
}

// Restart stops the server and starts it again on the same socket. With
// keepData the dataset survives (RDB snapshot taken at shutdown, plus the
// AOF if enabled); without, the server comes back empty.
func (s *Server) Restart(ctx context.Context, keepData bool) error {
	if err := s.Stop(ctx, keepData); err != nil {
		return err
	}
	return s.start(ctx)
}

// Kill sends SIGKILL (a crash: nothing is saved beyond what the AOF holds)
// and waits for the process to go.
func (s *Server) Kill() error {
	if s.cmd == nil || s.exited() {
		return nil
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return nil
}

// Signal sends sig to the server, e.g. SIGSTOP and SIGCONT to freeze it.
func (s *Server) Signal(sig os.Signal) error {
	if s.exited() {
		return errors.New("redisproc: server is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// StartAgain starts a server stopped by Stop or Kill, keeping whatever data
// files are in its directory.
func (s *Server) StartAgain(ctx context.Context) error {
	if !s.exited() {
		return errors.New("redisproc: server is still running")
	}
	return s.start(ctx)
}

func (s *Server) exited() bool {
	if s.done == nil {
		return true
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
