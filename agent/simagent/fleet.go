package simagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/buildinfo"
	"github.com/ironfleet/ironfleet/internal/graceful"
)

// ErrClosed is returned by Boot on a fleet that has stopped serving.
var ErrClosed = errors.New("simagent: fleet closed")

// Config configures a fleet of simulated agents. Zero fields take the
// defaults of the real agent unless said otherwise.
type Config struct {
	// APIURL is the API the agents look up and heartbeat at. Required.
	APIURL string
	// Dir holds the simulated disks, one file per node (<name>.img). Required.
	Dir string
	// DiskSize is the capacity of each simulated disk; zero means 10 GiB.
	// The files are only as large as the images written to them.
	DiskSize int64
	// Logger receives the agents' logs, tagged with the node name; nil
	// means discard.
	Logger *slog.Logger
	// HTTPClient is shared by all agents, for API calls and downloads; nil
	// means one client on a clone of http.DefaultTransport.
	HTTPClient *http.Client
	// Version is the agent_version the agents report; empty means this
	// build's version with "-sim" appended.
	Version        string
	RequestTimeout time.Duration
	Lookup         agent.LookupConfig
	Heartbeat      agent.HeartbeatConfig
	// StallTimeout and PowerDelay are the command API's (see agent.CommandConfig).
	StallTimeout time.Duration
	PowerDelay   time.Duration
}

// Fleet runs simulated agents in this process, cheap enough for hundreds:
// each is one goroutine (lookup, then heartbeats) plus the goroutine of a
// running command, and all share one HTTP listener that routes
// /agents/<name>/… to the agent of node <name>; an agent's callback URL is
// http://<listener>/agents/<name>. The agents speak to the API and the
// conductor exactly as the real agent does, write images to files and
// reboot or power off by calling their node's Machine.
type Fleet struct {
	cfg  Config
	l    net.Listener
	base string
	hc   *http.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	agents map[string]*Agent
}

// Node is one simulated machine's side of its agent.
type Node struct {
	// Name identifies the node in the fleet: its route and disk file name
	// (letters, digits, '.', '_', '-'). Required.
	Name string
	// MACs the agent looks its node up by. Required.
	MACs []string
	// Machine is rebooted or powered off by the agent's commands. Required.
	Machine agent.Machine
}

// Agent is one running simulated agent.
type Agent struct {
	name     string
	agent    *agent.Agent
	disk     string
	callback string
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
}

var simNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NewFleet returns a fleet whose agents' command APIs answer on l once
// Serve runs.
func NewFleet(l net.Listener, cfg Config) (*Fleet, error) {
	if l == nil {
		return nil, errors.New("simagent: nil listener")
	}
	if u, err := url.Parse(cfg.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("simagent: API URL %q: want an http:// or https:// URL with a host", cfg.APIURL)
	}
	if cfg.Dir == "" {
		return nil, errors.New("simagent: Dir is required")
	}
	if cfg.DiskSize <= 0 {
		cfg.DiskSize = 10 << 30
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64 // hundreds of agents talk to one API
		hc = &http.Client{Transport: t}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fleet{
		cfg:    cfg,
		l:      l,
		base:   "http://" + l.Addr().String(),
		hc:     hc,
		ctx:    ctx,
		cancel: cancel,
		agents: make(map[string]*Agent),
	}, nil
}

// Serve answers the agents' command APIs until ctx is done, then stops
// every agent and waits for them.
func (f *Fleet) Serve(ctx context.Context) error {
	srv := &http.Server{Handler: http.HandlerFunc(f.route), ReadHeaderTimeout: 10 * time.Second}
	var err error
	if serr := graceful.Serve(ctx, srv, f.l, 0); serr != nil {
		err = fmt.Errorf("simagent: %w", serr)
	}
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
	if f.cfg.HTTPClient == nil {
		f.hc.CloseIdleConnections()
	}
	return err
}

// Boot starts the agent of a node that has just booted its ramdisk: it
// looks itself up and heartbeats until Shutdown, the fleet stopping, or
// its lookup timing out. An agent already running for the node is shut
// down and replaced.
func (f *Fleet) Boot(n Node) (*Agent, error) {
	if !simNameRe.MatchString(n.Name) {
		return nil, fmt.Errorf("simagent: node name %q: want letters, digits, '.', '_' or '-'", n.Name)
	}
	if n.Machine == nil {
		return nil, fmt.Errorf("simagent: node %s: nil Machine", n.Name)
	}
	s := &Agent{
		name:     n.Name,
		disk:     filepath.Join(f.cfg.Dir, n.Name+".img"),
		callback: f.base + "/agents/" + n.Name,
		done:     make(chan struct{}),
	}
	// A machine's disk exists before anything is written to it (cleaning may
	// come first); the file stays sparse until written.
	df, err := os.OpenFile(s.disk, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("simagent: node %s: disk: %w", n.Name, err)
	}
	_ = df.Close()
	inv := simInventory(n, s.disk, f.cfg.DiskSize)
	version := f.cfg.Version
	if version == "" {
		version = buildinfo.Version + "-sim"
	}
	log := f.cfg.Logger.With("node", n.Name)
	a, err := agent.New(n.Machine, agent.Config{
		APIURL:         f.cfg.APIURL,
		MACs:           append([]string(nil), n.MACs...),
		CallbackURL:    s.callback,
		Version:        version,
		Logger:         log,
		HTTPClient:     f.hc,
		RequestTimeout: f.cfg.RequestTimeout,
		Lookup:         f.cfg.Lookup,
		Heartbeat:      f.cfg.Heartbeat,
		Commands: agent.CommandConfig{
			Logger:       log,
			Inventory:    func(context.Context) (protocol.Inventory, error) { return inv, nil },
			HTTPClient:   f.hc,
			StallTimeout: f.cfg.StallTimeout,
			PowerDelay:   f.cfg.PowerDelay,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("simagent: node %s: %w", n.Name, err)
	}
	s.agent = a

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if old := f.agents[n.Name]; old != nil {
		old.Shutdown()
	}
	ctx, cancel := context.WithCancel(f.ctx)
	s.cancel = cancel
	f.agents[n.Name] = s
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(s.done)
		defer cancel()
		s.err = a.Run(ctx)
		if s.err != nil && ctx.Err() == nil {
			log.Warn("simulated agent stopped", "err", s.err)
		}
		f.mu.Lock()
		if f.agents[n.Name] == s {
			delete(f.agents, n.Name)
		}
		f.mu.Unlock()
	}()
	return s, nil
}

// Agent returns the running agent of node name, or nil.
func (f *Fleet) Agent(name string) *Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agents[name]
}

// Len is the number of running agents.
func (f *Fleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.agents)
}

// route hands /agents/<name>/… to that node's agent.
func (f *Fleet) route(w http.ResponseWriter, r *http.Request) {
	const prefix = "/agents/"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	name, _, _ := strings.Cut(rest, "/")
	if !ok || name == "" {
		protocol.WriteError(w, http.StatusNotFound, protocol.CodeNotFound, "no such path")
		return
	}
	s := f.Agent(name)
	if s == nil {
		// A machine whose agent is not running does not answer at all; the
		// nearest an HTTP listener shared with other agents can say.
		protocol.WriteError(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, "agent of "+name+" is not running")
		return
	}
	http.StripPrefix(prefix+name, s.agent.Handler()).ServeHTTP(w, r)
}

// Shutdown stops the agent, as the machine powering off or rebooting
// does; it does not wait (see Done), so a Machine may call it from its
// Reboot or PowerOff.
func (s *Agent) Shutdown() { s.cancel() }

// Done is closed when the agent has stopped.
func (s *Agent) Done() <-chan struct{} { return s.done }

// Err is why the agent stopped (nil after a Shutdown that followed a
// successful lookup); valid once Done is closed.
func (s *Agent) Err() error {
	<-s.done
	return s.err
}

// Name is the node's name in the fleet.
func (s *Agent) Name() string { return s.name }

// CallbackURL is where the agent's command API answers.
func (s *Agent) CallbackURL() string { return s.callback }

// Disk is the file the agent writes images to (its inventory's only disk).
// It is the record of what the agent was given: the image, and a config
// drive in a partition after it (agenttest.ReadConfigDrive reads it back).
func (s *Agent) Disk() string { return s.disk }

// NodeUUID is the node's uuid once the lookup succeeded, else "".
func (s *Agent) NodeUUID() string { return s.agent.Node().UUID }

func simInventory(n Node, disk string, size int64) protocol.Inventory {
	inv := protocol.Inventory{
		CPU:    protocol.CPU{Model: "ironfleet simulated CPU", Count: 2},
		Memory: protocol.Memory{TotalBytes: 4 << 30},
		// What QEMU's virtio-blk disk given serial= reports (agent's
		// readDisks), for root device hints to match.
		Disks: []protocol.Disk{{
			Name: "vda", Path: disk, SizeBytes: size, Serial: "SIM-" + n.Name, Vendor: "0x1af4",
			ByPath: "/dev/disk/by-path/pci-0000:00:04.0", Rotational: true,
		}},
	}
	for i, m := range n.MACs {
		inv.Interfaces = append(inv.Interfaces, protocol.NIC{
			Name: fmt.Sprintf("eth%d", i), MACAddress: m, HasCarrier: true, OperState: "up", SpeedMbps: 10000,
		})
	}
	return inv
}
