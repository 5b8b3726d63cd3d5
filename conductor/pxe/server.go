package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// Errors a TFTP read request is refused with (the client sees the message).
var (
	// ErrBadPath: an empty, absolute or ".."-containing file name, or one
	// with control characters.
	ErrBadPath = errors.New("pxe: file name not allowed")
	// ErrEscape: the name resolves outside the root (through a symlink).
	ErrEscape = errors.New("pxe: file is outside the TFTP root")
	// ErrNotFound: no such regular file under the root.
	ErrNotFound = errors.New("pxe: file not found")
)

// ServerConfig holds the TFTP server's settings. Root is required; every
// other zero value is a documented default.
type ServerConfig struct {
	// Root is the directory served; nothing outside it is ever read.
	Root string
	// BlockSize is the largest data block offered to clients that ask for
	// one (blksize, RFC 2348); zero means 1468 (an Ethernet MTU's worth;
	// iPXE asks for 1432).
	BlockSize int
	// Timeout is how long to wait for a client's ack before resending a
	// block; zero means 5s.
	Timeout time.Duration
	// Retries is how many times a block is sent before the transfer is
	// abandoned; zero means 5.
	Retries int
	// Backoff is the pause before resending an unacknowledged block (after
	// Timeout has passed); zero means pin/tftp's default, a random pause of
	// up to 1s.
	Backoff time.Duration
	// SinglePort serves every transfer from the listening port instead of
	// one ephemeral port per transfer (for NATs and firewalls that only
	// pass port 69); slower.
	SinglePort bool
	// Logger receives debug records for transfers and missing files, and
	// info records for refused or failed transfers; nil discards.
	Logger *slog.Logger
	// Registerer registers the server's metrics; nil means none.
	Registerer prometheus.Registerer
}

// Server is a read-only TFTP server of one directory tree (pin/tftp/v3).
// Writes are refused; reads are confined to the root: names that are
// absolute or contain ".." are refused, and symlinks are followed only when
// relative and resolving inside the root (os.Root enforces this).
type Server struct {
	cfg       ServerConfig
	root      *os.Root
	transfers *prometheus.CounterVec
	bytes     prometheus.Counter
}

// NewServer opens cfg.Root and returns a Server of it. Close releases it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Root == "" {
		return nil, errors.New("pxe: ServerConfig.Root is required")
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = 1468
	}
	if cfg.BlockSize < 512 || cfg.BlockSize > 65464 {
		return nil, fmt.Errorf("pxe: block size %d outside [512, 65464]", cfg.BlockSize)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("pxe: open TFTP root: %w", err)
	}
	s := &Server{
		cfg:  cfg,
		root: root,
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironfleet_tftp_transfers_total",
			Help: "TFTP read requests by outcome (ok, refused, not_found, failed).",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironfleet_tftp_sent_bytes_total",
			Help: "File bytes sent by the TFTP server.",
		}),
	}
	if r := cfg.Registerer; r != nil {
		for _, c := range []prometheus.Collector{s.transfers, s.bytes} {
			if err := r.Register(c); err != nil {
				_ = root.Close()
				return nil, fmt.Errorf("pxe: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Close releases the root directory. Call it after Serve has returned.
func (s *Server) Close() error { return s.root.Close() }

// ListenAndServe listens on the UDP address addr ("0.0.0.0:69",
// "127.0.0.1:0") and serves until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	conn, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("pxe: listen: %w", err)
	}
	return s.Serve(ctx, conn)
}

// Serve serves TFTP read requests arriving on conn until ctx is done, then
// stops taking requests, waits for the transfers under way (each ends
// within Retries×(Timeout+Backoff) of its client going silent) and returns nil.
// conn is closed on return.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	srv := tftp.NewServer(s.read, nil)
	srv.SetBlockSize(s.cfg.BlockSize)
	srv.SetTimeout(s.cfg.Timeout)
	srv.SetRetries(s.cfg.Retries)
	if d := s.cfg.Backoff; d > 0 {
		srv.SetBackoff(func(int) time.Duration { return d })
	}
	if s.cfg.SinglePort {
		srv.EnableSinglePort()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(conn) }()
	select {
	case <-ctx.Done():
		srv.Shutdown()
		// In single-port mode pin/tftp v3.1.0's Shutdown neither closes the
		// connection nor waits: its read loop stays blocked until we do.
		_ = conn.Close()
		err := <-errc
		if err != nil {
			return fmt.Errorf("pxe: serve: %w", err)
		}
		return nil
	case err := <-errc:
		srv.Shutdown()
		_ = conn.Close()
		if err != nil {
			return fmt.Errorf("pxe: serve: %w", err)
		}
		return nil
	}
}

// read is pin/tftp's read handler: one call per read request, on its own
// goroutine (pin/tftp waits for them on Shutdown).
func (s *Server) read(filename string, rf io.ReaderFrom) error {
	remote := ""
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		a := ot.RemoteAddr()
		remote = a.String()
	}
	log := s.cfg.Logger.With("file", filename, "client", remote)
	name, err := CleanPath(filename)
	if err != nil {
		s.transfers.WithLabelValues("refused").Inc()
		log.Info("TFTP read refused", "err", err)
		return err
	}
	f, size, err := s.open(name)
	if err != nil {
		if errors.Is(err, ErrEscape) {
			s.transfers.WithLabelValues("refused").Inc()
			log.Info("TFTP read refused", "err", err)
			return err
		}
		// PXELINUX probes many names before it finds one: routine.
		s.transfers.WithLabelValues("not_found").Inc()
		log.Debug("TFTP file not found", "err", err)
		return err
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size) // tsize (RFC 2349): iPXE asks for it
	}
	start := time.Now()
	n, err := rf.ReadFrom(f)
	s.bytes.Add(float64(n))
	if err != nil {
		s.transfers.WithLabelValues("failed").Inc()
		log.Info("TFTP transfer failed", "sent", n, "size", size, "err", err)
		return nil // pin/tftp has already told the client, if it still listens
	}
	s.transfers.WithLabelValues("ok").Inc()
	log.Debug("TFTP transfer done", "sent", n, "took", time.Since(start))
	return nil
}

// open opens a regular file under the root, refusing escapes.
func (s *Server) open(name string) (*os.File, int64, error) {
	f, err := s.root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		// os.Root's refusals ("path escapes from parent") and anything
		// else: say no more than that to the client.
		return nil, 0, fmt.Errorf("%w: %s", ErrEscape, name)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrNotFound, name)
	}
	return f, st.Size(), nil
}

// CleanPath turns a TFTP file name into a slash-separated path relative to
// the root, or refuses it: empty names, absolute names ("/x", "C:\x"),
// names with a ".." element or control characters. Backslashes are taken
// as separators (some PXE firmware sends them). Refusing absolute names
// costs no legitimate client: iPXE strips the leading "/" of a tftp:// URI's
// path before it asks (src/net/udp/tftp.c, tftp_send_rrq), and PXELINUX and
// curl send relative names.
func CleanPath(filename string) (string, error) {
	name := strings.ReplaceAll(filename, `\`, "/")
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty", ErrBadPath)
	case strings.HasPrefix(name, "/") || (len(name) > 1 && name[1] == ':'):
		return "", fmt.Errorf("%w: absolute path %q", ErrBadPath, filename)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", fmt.Errorf("%w: control character in %q", ErrBadPath, filename)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: %q has a \"..\" element", ErrBadPath, filename)
		}
	}
	name = path.Clean(name)
	if name == "." {
		return "", fmt.Errorf("%w: %q names the root", ErrBadPath, filename)
	}
	return name, nil
}
