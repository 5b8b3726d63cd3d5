package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/wait"
)

// DefaultStallTimeout is how long an image download may receive nothing
// before the agent aborts it.
const DefaultStallTimeout = 60 * time.Second

// Machine is the machine the agent runs on, as far as the agent powers it.
// The real agent's is HostMachine; the simulated agent's is the simulated
// machine. Both are called from a goroutine of the agent's: they must not
// wait for that agent to stop (cancel its context instead).
type Machine interface {
	Reboot(ctx context.Context) error
	PowerOff(ctx context.Context) error
}

// CommandConfig holds the command API's optional settings.
type CommandConfig struct {
	// Logger receives one line per command; nil means discard.
	Logger *slog.Logger
	// Inventory returns the hardware inventory; nil means ReadInventory("/").
	Inventory func(ctx context.Context) (protocol.Inventory, error)
	// HTTPClient downloads images; nil means a client on a clone of
	// http.DefaultTransport.
	HTTPClient *http.Client
	// StallTimeout aborts a download that receives nothing for this long
	// (waiting for response headers included); zero means
	// DefaultStallTimeout.
	StallTimeout time.Duration
	// PowerDelay is how long reboot and power_off wait before acting, so
	// that the answer to the request reaches the conductor; zero means 1s.
	PowerDelay time.Duration
	// History is how many finished commands are remembered; zero means 64.
	History int
}

// CommandServer serves the command API the conductor drives (see
// README.md): inventory, write_image, erase_disk, erase_metadata,
// power_off, reboot. It runs
// one command at a time, each in a goroutine it owns, and refuses others
// while one runs. Until SetToken is called every request is refused.
type CommandServer struct {
	cfg       CommandConfig
	ownClient bool // cfg.HTTPClient is ours to close
	machine   Machine
	images    imageWriter
	mux       *http.ServeMux

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	token    []byte
	closed   bool
	running  *command
	commands map[string]*command
	order    []string // ids, oldest first
}

type command struct {
	protocol.Command
	progress progress
}

// NewCommandServer returns a command server that powers machine; with a
// nil machine, reboot and power_off are refused.
func NewCommandServer(machine Machine, cfg CommandConfig) *CommandServer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Inventory == nil {
		cfg.Inventory = func(context.Context) (protocol.Inventory, error) { return ReadInventory("/") }
	}
	ownClient := cfg.HTTPClient == nil
	if ownClient {
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.PowerDelay <= 0 {
		cfg.PowerDelay = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 64
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &CommandServer{
		cfg:       cfg,
		ownClient: ownClient,
		machine:   machine,
		ctx:       ctx,
		cancel:    cancel,
		commands:  make(map[string]*command),
		mux:       http.NewServeMux(),
	}
	s.images = imageWriter{client: cfg.HTTPClient, stall: cfg.StallTimeout, capacity: s.fileCapacity}
	s.mux.HandleFunc("GET /v1/inventory", s.getInventory)
	s.mux.HandleFunc("POST /v1/commands", s.postCommand)
	s.mux.HandleFunc("GET /v1/commands", s.listCommands)
	s.mux.HandleFunc("GET /v1/commands/{id}", s.getCommand)
	return s
}

// SetToken sets the agent token every request must carry as
// "Authorization: Bearer <token>". The token is kept in memory only.
func (s *CommandServer) SetToken(token string) {
	s.mu.Lock()
	s.token = []byte(token)
	s.mu.Unlock()
}

// ServeHTTP serves the command API.
func (s *CommandServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ironfleet-agent"`)
		protocol.WriteError(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "missing or wrong agent token")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Close cancels the running command, if any, and waits for it to end.
// Commands posted after Close are refused.
func (s *CommandServer) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	if s.ownClient {
		s.cfg.HTTPClient.CloseIdleConnections()
	}
}

func (s *CommandServer) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	want := s.token
	s.mu.Unlock()
	return ok && len(want) > 0 && subtle.ConstantTimeCompare([]byte(got), want) == 1
}

// fileCapacity is the size of a regular-file target declared by the
// inventory (the simulated agent's disks are files), 0 when unknown.
func (s *CommandServer) fileCapacity(target string) int64 {
	inv, err := s.cfg.Inventory(s.ctx)
	if err != nil {
		return 0
	}
	for _, d := range inv.Disks {
		if d.Path == target {
			return d.SizeBytes
		}
	}
	return 0
}

func (s *CommandServer) getInventory(w http.ResponseWriter, r *http.Request) {
	inv, err := s.cfg.Inventory(r.Context())
	if err != nil {
		protocol.WriteError(w, http.StatusInternalServerError, protocol.CodeIO, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

func (s *CommandServer) postCommand(w http.ResponseWriter, r *http.Request) {
	var req protocol.CommandRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		protocol.WriteError(w, http.StatusBadRequest, protocol.CodeInvalidParams, "body: "+err.Error())
		return
	}
	run, err := s.prepare(req)
	if err != nil {
		protocol.WriteError(w, http.StatusBadRequest, protocol.CodeInvalidParams, err.Error())
		return
	}
	cmd, err := s.start(req.Name, run)
	if err != nil {
		protocol.WriteError(w, http.StatusConflict, protocol.CodeBusy, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, cmd)
}

// prepare validates a request and returns the work it asks for.
func (s *CommandServer) prepare(req protocol.CommandRequest) (func(context.Context, *progress) error, error) {
	decode := func(v any) error {
		if len(req.Params) == 0 {
			return nil
		}
		dec := json.NewDecoder(strings.NewReader(string(req.Params)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("%w: params: %w", protocol.ErrInvalidParams, err)
		}
		return nil
	}
	switch req.Name {
	case protocol.CmdWriteImage:
		var p protocol.WriteImageParams
		if err := decode(&p); err != nil {
			return nil, err
		}
		if err := validWriteImage(p); err != nil {
			return nil, err
		}
		return func(ctx context.Context, pr *progress) error { return s.images.writeImage(ctx, p, pr) }, nil
	case protocol.CmdEraseDisk:
		var p protocol.EraseDiskParams
		if err := decode(&p); err != nil {
			return nil, err
		}
		if err := validTarget(p.Target); err != nil {
			return nil, err
		}
		return func(context.Context, *progress) error { return eraseDisk(p.Target) }, nil
	case protocol.CmdEraseMetadata:
		var p protocol.EraseMetadataParams
		if err := decode(&p); err != nil {
			return nil, err
		}
		if err := validTarget(p.Target); err != nil {
			return nil, err
		}
		return func(context.Context, *progress) error { return eraseMetadata(p.Target) }, nil
	case protocol.CmdReboot, protocol.CmdPowerOff:
		if err := decode(&struct{}{}); err != nil {
			return nil, err
		}
		if s.machine == nil {
			return nil, fmt.Errorf("%w: %s: this agent has no machine to power", protocol.ErrInvalidParams, req.Name)
		}
		act := s.machine.Reboot
		if req.Name == protocol.CmdPowerOff {
			act = s.machine.PowerOff
		}
		return func(ctx context.Context, _ *progress) error {
			if wait.Sleep(ctx, s.cfg.PowerDelay) != nil {
				return fmt.Errorf("%w: %w", protocol.ErrCanceled, context.Cause(ctx))
			}
			if err := act(ctx); err != nil {
				return fmt.Errorf("%w: %w", protocol.ErrMachine, err)
			}
			return nil
		}, nil
	default:
		return nil, fmt.Errorf("%w: unknown command %q (want %s, %s, %s, %s or %s)",
			protocol.ErrInvalidParams, req.Name, protocol.CmdWriteImage, protocol.CmdEraseDisk, protocol.CmdEraseMetadata, protocol.CmdPowerOff, protocol.CmdReboot)
	}
}

// start records a command and runs it in a goroutine, unless one is
// running already.
func (s *CommandServer) start(name string, run func(context.Context, *progress) error) (protocol.Command, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return protocol.Command{}, fmt.Errorf("%w: the agent is stopping", protocol.ErrBusy)
	}
	if s.running != nil {
		return protocol.Command{}, fmt.Errorf("%w: %s %s is running", protocol.ErrBusy, s.running.Name, s.running.ID)
	}
	c := &command{Command: protocol.Command{ID: rand.Text(), Name: name, Status: protocol.StatusRunning, StartedAt: time.Now().UTC()}}
	s.running = c
	s.commands[c.ID] = c
	s.order = append(s.order, c.ID)
	s.forgetOld()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := run(s.ctx, &c.progress)
		s.finish(c, err)
	}()
	return s.snapshot(c), nil
}

func (s *CommandServer) finish(c *command, err error) {
	s.mu.Lock()
	c.FinishedAt = time.Now().UTC()
	if err != nil {
		c.Status, c.Code, c.Error = protocol.StatusFailed, protocol.CodeOf(err), err.Error()
	} else {
		c.Status = protocol.StatusSucceeded
	}
	s.running = nil
	snap := s.snapshot(c)
	s.mu.Unlock()
	if err != nil {
		s.cfg.Logger.Warn("command failed", "id", snap.ID, "name", snap.Name, "code", snap.Code, "err", snap.Error)
	} else {
		s.cfg.Logger.Info("command succeeded", "id", snap.ID, "name", snap.Name,
			"bytes", snap.DoneBytes, "took", snap.FinishedAt.Sub(snap.StartedAt))
	}
}

// forgetOld drops the oldest finished commands beyond the history size.
// Called with s.mu held.
func (s *CommandServer) forgetOld() {
	for len(s.order) > s.cfg.History {
		id := s.order[0]
		if c := s.commands[id]; c == s.running {
			return
		}
		delete(s.commands, id)
		s.order = s.order[1:]
	}
}

// snapshot copies c's state. Called with s.mu held.
func (s *CommandServer) snapshot(c *command) protocol.Command {
	out := c.Command
	out.DoneBytes = c.progress.done.Load()
	out.TotalBytes = c.progress.total.Load()
	return out
}

func (s *CommandServer) getCommand(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.commands[r.PathValue("id")]
	var snap protocol.Command
	if ok {
		snap = s.snapshot(c)
	}
	s.mu.Unlock()
	if !ok {
		protocol.WriteError(w, http.StatusNotFound, protocol.CodeNotFound, "no command "+r.PathValue("id"))
		return
	}
	writeJSON(w, http.StatusOK, snap)
}

func (s *CommandServer) listCommands(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := protocol.CommandList{Commands: make([]protocol.Command, 0, len(s.order))}
	for _, id := range s.order {
		out.Commands = append(out.Commands, s.snapshot(s.commands[id]))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
