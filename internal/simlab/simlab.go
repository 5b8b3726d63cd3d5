// Package simlab runs a lab of simulated bare-metal machines that
// conductors in other processes can manage as hardware: each machine
// (conductor/sim) has an IPMI BMC on its own UDP port (internal/simbmc),
// boots a simulated agent (simagent.Fleet) that looks itself up and
// heartbeats at the API when it PXE-boots, and finds a deploy image on the
// lab's HTTP server. Enroll registers the machines with the API as nodes
// of driver "ipmi" with their ports. `ironfleet sim` runs one.
package simlab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/simagent"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/simbmc"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// ErrConfig is returned by New for a Config the lab cannot run with.
var ErrConfig = errors.New("simlab: invalid config")

// Defaults of Config, applied where a field is zero.
const (
	DefaultPrefix    = "sim"
	DefaultHost      = simbmc.DefaultHost
	DefaultImageSize = 1 << 20
)

// Config holds a lab's settings; every zero value is documented.
type Config struct {
	// Nodes is how many machines; at least 1, at most 65536.
	Nodes int
	// First is the index of the first machine: names are Prefix-%04d and
	// MACs 52:54:<first byte of Prefix hash>:… from the index, so labs with
	// different First or Prefix can run side by side.
	First int
	// Prefix names the machines; empty means DefaultPrefix.
	Prefix string
	// Host is the IP the BMCs, agents and image server listen on; empty
	// means DefaultHost.
	Host string
	// APIURL is where agents look up and heartbeat (and Enroll posts).
	// Required.
	APIURL string
	// Dir holds the agents' simulated disks. Required.
	Dir string
	// BMC is the BMCs' account (simbmc.Config's defaults when empty).
	BMCUsername, BMCPassword string
	// Timings of the machines; zero is instant (see sim.Timings).
	Timings sim.Timings
	// ImageSize is the size of the deploy image served; zero means
	// DefaultImageSize.
	ImageSize int
	// Heartbeat configures the agents; zero fields are the agent's defaults.
	Heartbeat agent.HeartbeatConfig
	// Lookup configures the agents' lookup; zero fields are the defaults.
	Lookup agent.LookupConfig
	// HTTPClient is used to enroll; nil means one with a 30s timeout.
	HTTPClient *http.Client
	// Logger receives the lab's and agents' logs; nil discards.
	Logger *slog.Logger
}

// Machine is one machine of the lab as the API should know it.
type Machine struct {
	Name string   `json:"name"`
	MACs []string `json:"macs"`
	// BMC is the IPMI address (host:port).
	BMC string `json:"bmc"`
	// DriverInfo is the node's driver_info for driver "ipmi".
	DriverInfo map[string]any `json:"driver_info"`
}

// Lab is a set of simulated machines. New listens; Run serves until its
// context ends (or Close releases a lab that will not run).
type Lab struct {
	cfg      Config
	fleet    *sim.Fleet
	bmcs     []*simbmc.BMC
	machines []Machine
	agents   *simagent.Fleet
	agentL   net.Listener
	imageL   net.Listener
	image    []byte
	imageSHA string
	hc       *http.Client
}

// New creates the machines and opens every socket: the BMCs' UDP ports,
// the agents' command API and the image server.
func New(ctx context.Context, cfg Config) (*Lab, error) {
	switch {
	case cfg.Nodes < 1 || cfg.Nodes > 1<<16:
		return nil, fmt.Errorf("%w: %d nodes, want 1 to 65536", ErrConfig, cfg.Nodes)
	case cfg.First < 0 || cfg.First+cfg.Nodes > 1<<24:
		return nil, fmt.Errorf("%w: first index %d out of range", ErrConfig, cfg.First)
	case cfg.APIURL == "":
		return nil, fmt.Errorf("%w: APIURL is required", ErrConfig)
	case cfg.Dir == "":
		return nil, fmt.Errorf("%w: Dir is required", ErrConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if cfg.ImageSize <= 0 {
		cfg.ImageSize = DefaultImageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Lab{cfg: cfg, hc: cfg.HTTPClient}
	if l.hc == nil {
		l.hc = &http.Client{Timeout: 30 * time.Second}
	}
	lc := new(net.ListenConfig)
	agentL, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, "0"))
	l.agentL = agentL
	if err != nil {
		return nil, fmt.Errorf("simlab: agents' listener: %w", err)
	}
	l.agents, err = simagent.NewFleet(agentL, simagent.Config{
		APIURL: cfg.APIURL, Dir: cfg.Dir, Logger: cfg.Logger,
		Heartbeat: cfg.Heartbeat, Lookup: cfg.Lookup,
	})
	if err != nil {
		_ = agentL.Close()
		return nil, fmt.Errorf("simlab: %w", err)
	}
	if l.imageL, err = lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, "0")); err != nil {
		_ = agentL.Close()
		return nil, fmt.Errorf("simlab: image server: %w", err)
	}
	l.image = imageBytes(cfg.ImageSize)
	sum := sha256.Sum256(l.image)
	l.imageSHA = hex.EncodeToString(sum[:])

	l.fleet = sim.NewFleet(sim.Config{Timings: cfg.Timings, Logger: cfg.Logger})
	fail := func(err error) (*Lab, error) {
		l.close()
		return nil, err
	}
	for i := cfg.First; i < cfg.First+cfg.Nodes; i++ {
		name := fmt.Sprintf("%s-%04d", cfg.Prefix, i)
		mac := macOf(cfg.Prefix, i)
		m, err := l.fleet.Add(name, mac)
		if err != nil {
			return fail(err)
		}
		b, err := simbmc.New(m, simbmc.Config{Host: cfg.Host, Username: cfg.BMCUsername, Password: cfg.BMCPassword, Logger: cfg.Logger})
		if err != nil {
			return fail(err)
		}
		l.bmcs = append(l.bmcs, b)
		l.machines = append(l.machines, Machine{Name: name, MACs: m.MACs(), BMC: b.Addr(), DriverInfo: b.DriverInfo()})
		l.wire(m)
	}
	return l, nil
}

// Close releases the sockets of a lab that will not Run.
func (l *Lab) Close() { l.close() }

func (l *Lab) close() {
	for _, b := range l.bmcs {
		_ = b.Close()
	}
	_ = l.agentL.Close()
	_ = l.imageL.Close()
	l.fleet.Close()
}

// wire starts the machine's agent when it boots from the network and
// stops it when the machine loses power.
func (l *Lab) wire(m *sim.Machine) {
	m.OnBoot(func(ctx context.Context, dev wire.BootDevice) {
		if dev != wire.BootPXE {
			return // the deployed "OS": nothing to run
		}
		// An agent lives until its machine powers off, not for a call.
		a, err := l.agents.Boot(simagent.Node{Name: m.Name(), MACs: m.MACs(), Machine: m}) //nolint:contextcheck // see above
		if err != nil {
			l.cfg.Logger.Warn("simulated agent did not start", "machine", m.Name(), "err", err)
			return
		}
		select {
		case <-ctx.Done(): // powered off or reset
			a.Shutdown()
		case <-a.Done():
		}
	})
}

// Machines are the lab's machines, by name.
func (l *Lab) Machines() []Machine { return append([]Machine(nil), l.machines...) }

// Fleet is the simulated machines, for inspection.
func (l *Lab) Fleet() *sim.Fleet { return l.fleet }

// ImageURL and ImageChecksum are the deploy image's instance_info.
func (l *Lab) ImageURL() string { return "http://" + l.imageL.Addr().String() + "/image.raw" }

// ImageChecksum is the sha256 of the image at ImageURL.
func (l *Lab) ImageChecksum() string { return l.imageSHA }

// Run serves the BMCs, the agents and the image until ctx is done, then
// stops them all and waits for them.
func (l *Lab) Run(ctx context.Context) error {
	defer l.fleet.Close()
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range l.bmcs {
		g.Go(func() error { return b.Serve(gctx) })
	}
	g.Go(func() error { return l.agents.Serve(gctx) })
	srv := &http.Server{Handler: http.HandlerFunc(l.serveImage), ReadHeaderTimeout: 10 * time.Second}
	g.Go(func() error {
		if err := graceful.Serve(gctx, srv, l.imageL, 5*time.Second); err != nil {
			return fmt.Errorf("simlab: image server: %w", err)
		}
		return nil
	})
	return g.Wait()
}

func (l *Lab) serveImage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/image.raw" {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "image.raw", time.Time{}, bytes.NewReader(l.image))
}

// Enroll creates each machine as a node of driver "ipmi" with its ports
// through the API's REST endpoints, one at a time, with instance_info
// pointing at the lab's image, and returns the nodes' UUIDs by name. A node
// of that name that exists already (a lab run before against the same API)
// is reused: its driver_info and instance_info are replaced with this lab's,
// and ports that exist are kept.
func (l *Lab) Enroll(ctx context.Context) (map[string]string, error) {
	instance := map[string]any{"image_source": l.ImageURL(), "image_checksum": l.imageSHA}
	nodes := make([]apiclient.Node, len(l.machines))
	for i, m := range l.machines {
		nodes[i] = apiclient.Node{Name: m.Name, Driver: "ipmi", DriverInfo: m.DriverInfo, InstanceInfo: instance, MACs: m.MACs}
	}
	c := &apiclient.Client{Base: l.cfg.APIURL, HTTP: l.hc}
	uuids, err := c.Enroll(ctx, nodes, apiclient.EnrollConfig{Workers: 1})
	if err != nil {
		return uuids, fmt.Errorf("simlab: %w", err)
	}
	return uuids, nil
}

// macOf is machine i's MAC: locally administered (52:54), a byte from the
// prefix so labs with different prefixes do not collide, and i.
func macOf(prefix string, i int) string {
	h := sha256.Sum256([]byte(prefix))
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", h[0], i>>16&0xff, i>>8&0xff, i&0xff)
}

// imageBytes is a deterministic image of n bytes.
func imageBytes(n int) []byte {
	const pattern = "ironfleet simulated image\n"
	b := make([]byte, n)
	for i := range b {
		b[i] = pattern[i%len(pattern)]
	}
	return b
}
