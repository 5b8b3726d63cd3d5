package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/internal/buildinfo"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// DefaultLookupTimeout is how long the agent tries to look itself up
// (ironic-python-agent's default).
const DefaultLookupTimeout = 300 * time.Second

// LookupConfig tunes the lookup's retries. Zero fields take the defaults.
type LookupConfig struct {
	// Timeout is how long the agent keeps trying before giving up with
	// ErrLookupTimeout; zero means DefaultLookupTimeout.
	Timeout time.Duration
	// InitialBackoff is the pause after the first failed attempt; it
	// doubles (jittered) with each failure up to MaxBackoff. Zero means 1s.
	InitialBackoff time.Duration
	// MaxBackoff caps the pause between attempts; zero means 60s.
	MaxBackoff time.Duration
	// ConflictPause is the pause after a 409 (the node is busy, e.g. locked
	// by a conductor); zero means 60s.
	ConflictPause time.Duration
}

func (c *LookupConfig) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = DefaultLookupTimeout
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 60 * time.Second
	}
	if c.MaxBackoff < c.InitialBackoff {
		c.MaxBackoff = c.InitialBackoff
	}
	if c.ConflictPause <= 0 {
		c.ConflictPause = 60 * time.Second
	}
}

// backoff is the pause after the n-th (0-based) consecutive failure, for a
// random r in [0,1): InitialBackoff·2ⁿ capped at MaxBackoff, scaled into
// its upper half so that agents booted together spread out.
func (c LookupConfig) backoff(n int, r float64) time.Duration {
	d := c.MaxBackoff
	if n < 32 {
		if e := c.InitialBackoff << n; e > 0 && e < d {
			d = e
		}
	}
	return max(c.InitialBackoff, time.Duration(float64(d)*(0.5+r/2)))
}

// HeartbeatConfig tunes the heartbeat's rhythm. Zero fields take the
// defaults, which are ironic-python-agent's.
type HeartbeatConfig struct {
	// MinFraction and MaxFraction bound the interval between beats as a
	// fraction of the heartbeat timeout the lookup returned; zero means 0.3
	// and 0.6.
	MinFraction, MaxFraction float64
	// ErrorMin and ErrorMax bound the pause after a failed beat; zero means
	// 5s and 10s.
	ErrorMin, ErrorMax time.Duration
	// DefaultTimeout is used when the lookup returned no heartbeat timeout;
	// zero means 300s.
	DefaultTimeout time.Duration
}

func (c *HeartbeatConfig) defaults() {
	if c.MinFraction <= 0 {
		c.MinFraction = 0.3
	}
	if c.MaxFraction <= 0 {
		c.MaxFraction = 0.6
	}
	if c.MaxFraction < c.MinFraction {
		c.MaxFraction = c.MinFraction
	}
	if c.ErrorMin <= 0 {
		c.ErrorMin = 5 * time.Second
	}
	if c.ErrorMax <= 0 {
		c.ErrorMax = 10 * time.Second
	}
	if c.ErrorMax < c.ErrorMin {
		c.ErrorMax = c.ErrorMin
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 300 * time.Second
	}
}

// interval is the pause before the next beat for a random r in [0,1).
func (c HeartbeatConfig) interval(timeout time.Duration, failed bool, r float64) time.Duration {
	if failed {
		return c.ErrorMin + time.Duration(float64(c.ErrorMax-c.ErrorMin)*r)
	}
	f := c.MinFraction + (c.MaxFraction-c.MinFraction)*r
	return time.Duration(float64(timeout) * f)
}

// Config configures an Agent.
type Config struct {
	// APIURL is the ironfleet (Ironic-compatible) API. Required.
	APIURL string
	// MACs are the addresses the agent looks its node up by. Required.
	MACs []string
	// CallbackURL is where the conductor reaches the command API, sent in
	// every heartbeat. Required.
	CallbackURL string
	// Version is sent as agent_version; empty means this build's version.
	Version string
	// Logger receives the agent's log; nil means discard. The agent token
	// is never logged.
	Logger *slog.Logger
	// HTTPClient calls the API; nil means a client on a clone of
	// http.DefaultTransport.
	HTTPClient *http.Client
	// RequestTimeout bounds each lookup and heartbeat request; zero means 30s.
	RequestTimeout time.Duration
	Lookup         LookupConfig
	Heartbeat      HeartbeatConfig
	// Commands configures the command API; its Logger defaults to Logger.
	Commands CommandConfig
	// Rand returns a number in [0,1) for jitter; nil means math/rand/v2.
	Rand func() float64
}

// Agent looks its node up, heartbeats, and serves the command API with the
// token the lookup returned.
type Agent struct {
	cfg       Config
	cmds      *CommandServer
	log       *slog.Logger
	ownClient bool // cfg.HTTPClient is ours to close

	mu     sync.Mutex
	lookup wire.LookupResponse
}

// New validates cfg and returns an agent that powers machine.
func New(machine Machine, cfg Config) (*Agent, error) {
	if machine == nil {
		return nil, errors.New("agent: nil Machine")
	}
	if err := checkHTTPURL(cfg.APIURL); err != nil {
		return nil, fmt.Errorf("agent: API URL %q: %w", cfg.APIURL, err)
	}
	if err := checkHTTPURL(cfg.CallbackURL); err != nil {
		return nil, fmt.Errorf("agent: callback URL %q: %w", cfg.CallbackURL, err)
	}
	if len(cfg.MACs) == 0 {
		return nil, errors.New("agent: no MAC addresses to look the node up by")
	}
	cfg.MACs = slices.Clone(cfg.MACs)
	for i, m := range cfg.MACs {
		hw, err := net.ParseMAC(m)
		if err != nil {
			return nil, fmt.Errorf("agent: MAC %q: %w", m, err)
		}
		cfg.MACs[i] = hw.String()
	}
	if cfg.Version == "" {
		cfg.Version = defaultVersion()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ownClient := cfg.HTTPClient == nil
	if ownClient {
		cfg.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64 //nolint:gosec // jitter, not a secret
	}
	cfg.Lookup.defaults()
	cfg.Heartbeat.defaults()
	if cfg.Commands.Logger == nil {
		cfg.Commands.Logger = cfg.Logger
	}
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	return &Agent{cfg: cfg, cmds: NewCommandServer(machine, cfg.Commands), log: cfg.Logger, ownClient: ownClient}, nil
}

// Handler is the command API (answering 401 to everything until the lookup
// has returned a token).
func (a *Agent) Handler() http.Handler { return a.cmds }

// Node returns what the lookup returned about the node (zero before it).
func (a *Agent) Node() wire.LookupNode {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lookup.Node
}

// Run looks the node up (retrying with backoff within the lookup timeout)
// and then heartbeats until ctx is done. On return the running command, if
// any, is cancelled and waited for. It returns nil when ctx ends after a
// successful lookup.
func (a *Agent) Run(ctx context.Context) error {
	defer a.cmds.Close()
	if a.ownClient {
		defer a.cfg.HTTPClient.CloseIdleConnections()
	}
	res, err := a.lookupLoop(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.lookup = res
	a.mu.Unlock()
	a.cmds.SetToken(res.Config.AgentToken)
	a.log.Info("looked up", "node", res.Node.UUID, "heartbeat_timeout", res.Config.HeartbeatTimeout)
	a.heartbeatLoop(ctx, res)
	return nil
}

// Serve runs the command API on l and Run, until ctx is done or either
// fails.
func (a *Agent) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	serveErr := make(chan error, 1)
	go func() {
		err := graceful.Serve(ctx, srv, l, 5*time.Second)
		cancel() // a failed command API ends Run too
		serveErr <- err
	}()
	err := a.Run(ctx)
	cancel()
	if serr := <-serveErr; serr != nil {
		if errors.Is(err, context.Canceled) {
			err = nil // Run ended because the command API failed
		}
		return errors.Join(fmt.Errorf("agent: command API: %w", serr), err)
	}
	return err
}

func (a *Agent) lookupLoop(parent context.Context) (wire.LookupResponse, error) {
	ctx, cancel := context.WithTimeout(parent, a.cfg.Lookup.Timeout)
	defer cancel()
	var lastErr error
	for n := 0; ; n++ {
		res, status, err := a.lookupOnce(ctx)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil && lastErr != nil {
			break // this attempt was cut by the deadline: report the one before
		}
		lastErr = err
		pause := a.cfg.Lookup.backoff(n, a.cfg.Rand())
		if status == http.StatusConflict {
			pause = a.cfg.Lookup.ConflictPause
		}
		a.log.Debug("lookup failed", "attempt", n+1, "retry_in", pause, "err", err)
		if wait.Sleep(ctx, pause) != nil {
			break
		}
	}
	if parent.Err() != nil {
		return wire.LookupResponse{}, fmt.Errorf("agent: lookup: %w", context.Cause(parent))
	}
	return wire.LookupResponse{}, fmt.Errorf("%w after %s: last error: %w", ErrLookupTimeout, a.cfg.Lookup.Timeout, lastErr)
}

// lookupOnce asks the API once; it returns the HTTP status when there was
// an answer.
func (a *Agent) lookupOnce(ctx context.Context) (wire.LookupResponse, int, error) {
	var res wire.LookupResponse
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	u := a.cfg.APIURL + "/v1/lookup?addresses=" + url.QueryEscape(strings.Join(a.cfg.MACs, ","))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return res, 0, fmt.Errorf("agent: lookup: %w", err)
	}
	req.Header.Set(wire.APIVersionHeader, wire.AgentAPIVersion)
	req.Header.Set("Accept", "application/json")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return res, 0, fmt.Errorf("agent: lookup: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, resp.StatusCode, fmt.Errorf("agent: lookup: reading answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return res, resp.StatusCode, fmt.Errorf("agent: lookup: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return res, resp.StatusCode, fmt.Errorf("agent: lookup: decoding answer: %w", err)
	}
	if res.Node.UUID == "" {
		return res, resp.StatusCode, errors.New("agent: lookup: answer has no node uuid")
	}
	if res.Config.AgentToken == "" {
		return res, resp.StatusCode, errors.New("agent: lookup: answer has no agent token (was it handed out already?)")
	}
	return res, resp.StatusCode, nil
}

func (a *Agent) heartbeatLoop(ctx context.Context, res wire.LookupResponse) {
	timeout := time.Duration(res.Config.HeartbeatTimeout * float64(time.Second))
	if timeout <= 0 {
		timeout = a.cfg.Heartbeat.DefaultTimeout
	}
	// Three strings: marshalling cannot fail.
	body, _ := json.Marshal(wire.HeartbeatRequest{
		CallbackURL:  a.cfg.CallbackURL,
		AgentToken:   res.Config.AgentToken,
		AgentVersion: a.cfg.Version,
	})
	u := a.cfg.APIURL + "/v1/heartbeat/" + url.PathEscape(res.Node.UUID)
	for {
		err := a.heartbeatOnce(ctx, u, body)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Warn("heartbeat failed", "node", res.Node.UUID, "err", err)
		}
		if wait.Sleep(ctx, a.cfg.Heartbeat.interval(timeout, err != nil, a.cfg.Rand())) != nil {
			return
		}
	}
}

func (a *Agent) heartbeatOnce(ctx context.Context, u string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("agent: heartbeat: %w", err)
	}
	req.Header.Set(wire.APIVersionHeader, wire.AgentAPIVersion)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("agent: heartbeat: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("agent: heartbeat: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func defaultVersion() string { return buildinfo.Version }
