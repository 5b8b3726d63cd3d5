package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/simagent"
	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/hardware"
	"github.com/ironfleet/ironfleet/internal/redisproc"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Defaults of DevConfig, applied where a field is zero, and where the fleet's
// processes look for each other when not told.
const (
	// DefaultAPIAddr is where a dev fleet's API listens, and so where the
	// other commands look for an API.
	DefaultAPIAddr = "127.0.0.1:6385"
	// DefaultTFTPAddr is a free high UDP port on 127.0.0.1.
	DefaultTFTPAddr = "127.0.0.1:0"
	// DefaultConductors is how many conductors a dev fleet runs.
	DefaultConductors = 2
	// DefaultDevHeartbeatTimeout is what a dev fleet's API tells agents:
	// short, so that dev deploys move quickly.
	DefaultDevHeartbeatTimeout = 10 * time.Second
	// DefaultKernel and DefaultRamdisk are where the agent's kernel and
	// ramdisk lie under a TFTP root.
	DefaultKernel  = "agent/vmlinuz"
	DefaultRamdisk = "agent/initramfs"
	// DefaultTempSyncInterval is DevConfig.SyncInterval for a fleet whose
	// data directory is removed when it stops (`ironfleet dev` without
	// --data-dir): nothing of it outlives the process, so a disk flush per
	// write buys no durability anyone can use, and it costs 40 % of the
	// fleet's CPU per node (docs/benchmarks.md, "Lifecycle throughput").
	// One second is Redis's own appendfsync default.
	DefaultTempSyncInterval = time.Second
)

// DevConfig is a whole fleet in one process: what `ironfleet dev` runs.
type DevConfig struct {
	// DataDir holds NATS's and Redis's data, the TFTP root, simulated disks. Required.
	DataDir string
	// APIAddr is where the API listens; empty means DefaultAPIAddr.
	APIAddr string
	// TFTPAddr is where the TFTP server listens (UDP); empty means
	// DefaultTFTPAddr, a free high port on 127.0.0.1.
	TFTPAddr string
	// Nodes is how many simulated machines (with simulated agents) to run
	// and enroll; zero means none.
	Nodes int
	// Conductors is how many conductors to run in the default group; zero
	// means DefaultConductors.
	Conductors int
	// Provide takes the enrolled nodes to available (manage, then provide),
	// through the API, as an operator would.
	Provide bool
	// NoEnroll runs the Nodes machines (sim-0001…, MACs 52:54:00:00:00:00…)
	// but enrolls none of them, for a test that registers them the way the
	// client it replays does.
	NoEnroll bool
	// Timings of the simulated machines; the zero value is instant.
	Timings sim.Timings
	// HeartbeatTimeout is what the API tells agents (they beat every 30–60 %
	// of it); zero means DefaultDevHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// RedisServer is the redis-server binary; empty means
	// redisproc.DefaultBinary.
	RedisServer string
	// SyncInterval is how often the fleet's own servers fsync their data:
	// zero means on every write (NATS's sync always, Redis's appendfsync
	// always), so an acknowledged write survives a power cut; a positive
	// interval is the embedded NATS server's (transport.EmbeddedConfig)
	// and makes the AOF of the redis-server the fleet starts fsync once a
	// second (redisproc.Config.AOFEverySecond). Either way every write
	// reaches the files at once: only a crash of the machine loses the
	// last interval's. `ironfleet dev` uses DefaultTempSyncInterval when
	// its data directory is a temporary one.
	SyncInterval time.Duration
	// RedisURL, when set, is a Redis the fleet uses (any form NewRedis
	// takes, such as a Sentinel-watched master) instead of starting its own
	// redis-server; the fleet neither starts nor stops it.
	RedisURL string
	// LockTTL is the lease of node locks; zero means lock.DefaultTTL.
	LockTTL time.Duration
	// LockAttempts and LockInterval are the lock's standard mode (the API's
	// user actions, and the continuation under release-reacquire); zero
	// means the lock's defaults, Ironic's 3 × 1s.
	LockAttempts int
	LockInterval time.Duration
	// ImageSize is the size of the demo image every node deploys; zero
	// means 4 MiB.
	ImageSize int
	// ManualClean enrolls the nodes with automated_clean false, so that
	// providing them skips cleaning (quick for large benchmark fleets).
	ManualClean bool
	// EnrollWorkers is how many nodes are enrolled (and provided) at once;
	// zero means 8.
	EnrollWorkers int
	// Conductor tunes every conductor (Host and Groups are set per conductor).
	Conductor conductor.Config
	// Handoff replaces the conductors' continuation handoff (ironfleet bench
	// fleet measures Ironic's ways with it); the zero value is ironfleet's.
	Handoff conductor.Handoff
	// Logger receives everything's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Dev is a running dev fleet.
type Dev struct {
	cfg      DevConfig
	log      *slog.Logger
	nats     *transport.Embedded
	redis    *redisproc.Server
	stops    []func() // cleanups, in the order their parts were made
	g        *errgroup.Group
	cancel   context.CancelFunc
	apiURL   string
	tftpAddr string
	imageURL string
	Registry *prometheus.Registry
	// running are the conductors, in order, and newConductor makes another
	// like them (ReplaceConductor).
	running      []*devConductor
	newConductor func(infra *Infra, host string) (*Conductor, error)
	gctx         context.Context
}

// APIURL is the API's base URL.
func (d *Dev) APIURL() string { return d.apiURL }

// NATSURL is the embedded NATS server's URL.
func (d *Dev) NATSURL() string { return d.nats.URL() }

// RedisURL is the URL of the fleet's Redis: DevConfig.RedisURL, or the
// private redis-server's.
func (d *Dev) RedisURL() string {
	if d.cfg.RedisURL != "" {
		return d.cfg.RedisURL
	}
	return d.redis.URL()
}

// TFTPAddr is the TFTP server's address.
func (d *Dev) TFTPAddr() string { return d.tftpAddr }

// ImageURL is the demo image the nodes' instance_info points at.
func (d *Dev) ImageURL() string { return d.imageURL }

// StartDev starts the whole fleet and returns once the API answers; the
// nodes are enrolled (and provided) in the background. Stop ends it.
func StartDev(ctx context.Context, cfg DevConfig) (d *Dev, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("fleet: DevConfig.DataDir is required")
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = DefaultAPIAddr
	}
	if cfg.TFTPAddr == "" {
		cfg.TFTPAddr = DefaultTFTPAddr
	}
	if cfg.Conductors <= 0 {
		cfg.Conductors = DefaultConductors
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = DefaultDevHeartbeatTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d = &Dev{cfg: cfg, log: cfg.Logger, Registry: prometheus.NewRegistry()}
	d.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() { //nolint:contextcheck // stopping uses its own bounded contexts, not the caller's
		if err != nil {
			d.Stop()
		}
	}()
	dirs := map[string]string{}
	for _, name := range []string{"nats", "redis", "tftp", "disks"} {
		dirs[name] = filepath.Join(cfg.DataDir, name)
		if err := os.MkdirAll(dirs[name], 0o700); err != nil {
			return nil, fmt.Errorf("fleet: data dir: %w", err)
		}
	}

	// Sockets first: an address in use is the likeliest start-up error.
	apiL, err := new(net.ListenConfig).Listen(ctx, "tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("api: listen on %s: %w (is another ironfleet running? use --api-addr)", cfg.APIAddr, err)
	}
	d.stops = append(d.stops, func() { _ = apiL.Close() })
	d.apiURL = "http://" + apiL.Addr().String()
	tftpC, err := new(net.ListenConfig).ListenPacket(ctx, "udp", cfg.TFTPAddr)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen on %s: %w", cfg.TFTPAddr, err)
	}
	d.tftpAddr = tftpC.LocalAddr().String()

	if d.nats, err = transport.StartEmbedded(ctx, transport.EmbeddedConfig{StoreDir: dirs["nats"], SyncInterval: cfg.SyncInterval}); err != nil {
		return nil, err
	}
	d.log.Info("nats started", "url", d.nats.URL())
	if cfg.RedisURL == "" {
		if d.redis, err = redisproc.Start(ctx, redisproc.Config{Dir: dirs["redis"], Binary: cfg.RedisServer, AOF: true, AOFEverySecond: cfg.SyncInterval > 0}); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		d.log.Info("redis started", "url", d.redis.URL())
	}

	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{d.nats.URL()}, Name: "ironfleet-dev", Logger: d.log})
	if err != nil {
		return nil, err
	}
	d.stops = append(d.stops, nc.Close)
	rc, err := NewRedis(ctx, d.RedisURL())
	if err != nil {
		return nil, err
	}
	d.stops = append(d.stops, func() { _ = rc.Close() })
	infra, err := NewInfra(ctx, nc, rc, InfraConfig{
		Lock:   lock.Config{TTL: cfg.LockTTL, Attempts: cfg.LockAttempts, Interval: cfg.LockInterval, Holder: "dev"},
		Logger: d.log, Registerer: d.Registry,
	})
	if err != nil {
		return nil, err
	}
	d.stops = append(d.stops, infra.Close)

	// The demo image every node deploys, and the simulated world.
	image, imageSum := demoImage(cfg.ImageSize)
	imgL, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.imageURL = "http://" + imgL.Addr().String() + "/demo.img"
	boot, err := pxe.NewConfigs(pxe.Config{Root: dirs["tftp"], Logger: d.log})
	if err != nil {
		return nil, err
	}
	// Machines PXE-boot into their agent only when a conductor wrote a boot
	// config for them, as real ones do (boot.ipxe falls through to disk).
	machines := sim.NewFleet(sim.Config{Timings: cfg.Timings, Logger: d.log, PXEConfigured: boot.Configured})
	agentL, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	agents, err := simagent.NewFleet(agentL, simagent.Config{
		APIURL: d.apiURL, Dir: dirs["disks"], Logger: d.log.With("component", "agents"),
		Lookup:     agent.LookupConfig{InitialBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second, ConflictPause: 2 * time.Second},
		Heartbeat:  agent.HeartbeatConfig{ErrorMin: time.Second, ErrorMax: 2 * time.Second},
		PowerDelay: 100 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}

	conductors := make([]*Conductor, cfg.Conductors)
	// The dev fleet offers ipmi and fake-hardware (the conductors'
	// defaults) and sim, in its conductors and its API alike.
	simDriver := conductor.Describe(conductor.NewPowerDriver(machines.ValidateDriverInfo, machines.NodePower), sim.Properties)
	drivers := conductor.Drivers{Sim: simDriver}
	d.newConductor = func(infra *Infra, host string) (*Conductor, error) {
		cc := cfg.Conductor
		cc.Host = host
		cc.Boot = wire.BootParams{Kernel: DefaultKernel, Ramdisk: DefaultRamdisk, APIURL: d.apiURL}
		return NewConductor(infra, ConductorConfig{
			Conductor: cc, TFTPRoot: dirs["tftp"], Boot: boot, Drivers: drivers, Handoff: cfg.Handoff,
			Consoles: map[string]conductor.ConsoleDriver{hardware.SimConsole: conductor.NewConsoleDriver(machines.StartConsole, nil)},
			Logger:   d.log, Registerer: d.Registry,
		})
	}
	for i := range conductors {
		c, err := d.newConductor(infra, fmt.Sprintf("conductor-%d", i+1))
		if err != nil {
			return nil, err
		}
		conductors[i] = c
	}
	apiDrivers, err := ValidateOnlyDrivers(DefaultHardwareTypes)
	if err != nil {
		return nil, err
	}
	apiDrivers[Sim] = simDriver
	srv, err := NewAPI(infra, apiDrivers, APIConfig{Host: "dev", API: api.Config{ //nolint:contextcheck // New does no I/O
		Auth: api.AuthNone, HeartbeatTimeout: cfg.HeartbeatTimeout,
		MaxDeploys: cfg.Conductor.MaxDeploys, MaxCleans: cfg.Conductor.MaxCleans,
		LockAttempts: cfg.LockAttempts, LockInterval: cfg.LockInterval,
		Logger: d.log.With("component", "api"), Registerer: d.Registry, Gatherer: d.Registry,
	}})
	if err != nil {
		return nil, err
	}

	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	g, gctx := errgroup.WithContext(rctx)
	d.g, d.gctx = g, gctx
	g.Go(func() error { return srv.Serve(gctx, apiL) })
	g.Go(func() error { return serveImage(gctx, imgL, image) })
	g.Go(func() error { return agents.Serve(gctx) })
	g.Go(func() error { <-gctx.Done(); machines.Close(); return nil })
	for i, c := range conductors {
		var pc net.PacketConn
		if i == 0 {
			pc = tftpC // the first conductor serves the shared TFTP root
		}
		d.running = append(d.running, d.serveConductor(gctx, c, pc))
	}

	// Simulated machines and their nodes.
	for i := range cfg.Nodes {
		name, mac := SimMachine(i)
		m, err := machines.Add(name, mac)
		if err != nil {
			return nil, err
		}
		m.OnBoot(func(_ context.Context, dev wire.BootDevice) {
			if dev != wire.BootPXE {
				return
			}
			//nolint:contextcheck // the agent lives on the fleet's context, not the boot callback's
			if _, err := agents.Boot(simagent.Node{Name: name, MACs: []string{mac}, Machine: m}); err != nil {
				d.log.Warn("starting simulated agent", "machine", name, "err", err)
			}
		})
		m.OnPowerOff(func() {
			if a := agents.Agent(name); a != nil {
				a.Shutdown()
			}
		})
	}
	if cfg.Nodes > 0 && !cfg.NoEnroll {
		g.Go(func() error {
			e := enrollment{n: cfg.Nodes, imageURL: d.imageURL, imageSum: imageSum, provide: cfg.Provide, manualClean: cfg.ManualClean, workers: cfg.EnrollWorkers}
			if err := enroll(gctx, d.apiURL, e, d.log); err != nil && gctx.Err() == nil {
				d.log.Warn("enrolling the simulated nodes", "err", err)
			}
			return nil
		})
	}
	return d, nil
}

// Wait blocks until a component of the fleet fails or Stop is called.
func (d *Dev) Wait() error { return d.g.Wait() }

// Stop stops every component in order — API and conductors first, then
// Redis, then NATS — and waits for them.
func (d *Dev) Stop() {
	if d.cancel != nil {
		d.cancel()
		_ = d.g.Wait()
	}
	// Undo in reverse: what was built on a connection goes before it.
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
	d.stops = nil
	if d.redis != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = d.redis.Stop(sctx, true)
		cancel()
		d.log.Info("redis stopped")
		d.redis = nil
	}
	if d.nats != nil {
		d.nats.Shutdown()
		d.log.Info("nats stopped")
		d.nats = nil
	}
}

// demoImage is the image dev nodes deploy: size bytes (zero means 4 MiB)
// with a recognisable header, and a disk as a cloud image is: an MBR with
// one Linux partition over the rest, so that the agent can add a config
// drive partition after it as on a real image.
func demoImage(size int) ([]byte, string) {
	if size <= 0 {
		size = 4 << 20
	}
	img := make([]byte, max(size, 64))
	copy(img, "ironfleet demo image\n")
	for i := 4096; i < len(img); i++ {
		img[i] = byte(i) //nolint:gosec // a byte pattern: wrapping is the point
	}
	if sectors := len(img) / 512; sectors > 8 {
		// The first partition entry (offset 446): not bootable, CHS unused
		// (0xfeffff, as for LBA-only disks), type 0x83, from sector 8.
		e := img[446:462]
		copy(e, []byte{0x00, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], 8)
		binary.LittleEndian.PutUint32(e[12:], uint32(sectors-8)) //nolint:gosec // a demo image is far below 2 TiB
		img[510], img[511] = 0x55, 0xaa
	}
	sum := sha256.Sum256(img)
	return img, hex.EncodeToString(sum[:])
}

func serveImage(ctx context.Context, l net.Listener, image []byte) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "demo.img", time.Time{}, bytes.NewReader(image))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	return graceful.Serve(ctx, srv, l, 5*time.Second)
}
