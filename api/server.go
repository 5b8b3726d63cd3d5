package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Nodes is what the API needs of the node inventory (*transport.Inventory):
// cached reads, compare-and-set writes and read-your-writes.
type Nodes interface {
	// Node reads a node from the cache.
	Node(uuid string) (wire.Node, bool)
	// List reads one page of cached nodes.
	List(q transport.NodeQuery) ([]wire.Node, error)
	// Get reads a node from the store (not the cache).
	Get(ctx context.Context, uuid string) (wire.Node, error)
	NodeByName(ctx context.Context, name string) (wire.Node, error)
	NodeByMAC(ctx context.Context, mac string) (wire.Node, error)
	CreateNode(ctx context.Context, n wire.Node) (wire.Node, error)
	UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error)
	DeleteNode(ctx context.Context, uuid string, fence uint64) error
	// Sync waits until the cache holds every write stored before the call.
	Sync(ctx context.Context) error
	// MaxRecordBytes is the largest record the inventory stores (nodes and
	// ports alike); larger writes fail with transport.ErrTooLarge.
	MaxRecordBytes() int
}

// Ports is what the API needs of the port inventory (*transport.Inventory).
type Ports interface {
	Ports(q transport.PortQuery) ([]wire.Port, error)
	GetPort(ctx context.Context, uuid string) (wire.Port, error)
	PortByName(ctx context.Context, name string) (wire.Port, error)
	PortByMAC(ctx context.Context, mac string) (wire.Port, error)
	CreatePort(ctx context.Context, p wire.Port) (wire.Port, error)
	UpdatePort(ctx context.Context, uuid string, fn func(*wire.Port) error) (wire.Port, error)
	DeletePort(ctx context.Context, uuid string) error
}

// Tasks publishes tasks for conductors (*transport.Bus).
type Tasks interface {
	Publish(ctx context.Context, t wire.Task) (uint64, error)
	EmitEvent(ctx context.Context, ev wire.Event) error
	// Connected is nil while the bus can take a publish now; a user
	// action is refused (503) before its lock and first move otherwise.
	Connected() error
}

// Locks is what the API needs of the node lock (*lock.Locker): a
// standard-mode attempt before publishing a user action or writing a node,
// the lock view, and forgetting a deleted node's lock. The API acquires as
// the Locker's holder, which names it in 409 NodeLocked and in
// reservations: LockHolder(host) where ironfleet wires it.
type Locks interface {
	Acquire(ctx context.Context, resource string, opts *lock.Options) (*lock.Lock, error)
	Snapshot(ctx context.Context, resource string) (lock.Snapshot, error)
	Snapshots(ctx context.Context, resources []string) ([]lock.Snapshot, error)
	Summary(ctx context.Context) ([]lock.Snapshot, error)
	Forget(ctx context.Context, resource string) (bool, error)
}

// LockHolder is the lock holder name of the API process on host,
// "api:<host>", which tells its brief standard-mode holds apart from the
// conductors' in the lock view.
func LockHolder(host string) string { return "api:" + host }

// Conductors lists the registered conductors (*transport.Registry).
type Conductors interface {
	Conductors(ctx context.Context) ([]transport.ConductorInfo, error)
}

// DriverValidator checks a node's driver_info without touching hardware,
// and describes the driver_info keys of a hardware type (conductor.Drivers).
type DriverValidator interface {
	ValidateDriverInfo(node wire.Node) error
	// Properties describes, by key, the driver_info keys driver reads.
	Properties(driver string) (map[string]string, error)
}

// Checker reports whether a dependency (NATS, Redis) is reachable.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckFunc adapts a function to Checker.
type CheckFunc func(ctx context.Context) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context) error { return f(ctx) }

// Deps are the API's required dependencies. Every field must be set except
// Checks.
type Deps struct {
	Nodes      Nodes
	Ports      Ports
	Tasks      Tasks
	Locks      Locks
	Conductors Conductors
	Drivers    DriverValidator
	// Records holds allocations, deploy templates, node history and
	// inspection data (transport.NewRecords of the inventory).
	Records *transport.Records
	// DriverNames are the hardware types nodes may use ("ipmi", "sim"),
	// the keys of the conductor.Drivers map.
	DriverNames []string
	// Checks are run by /readyz, by name ("nats", "redis").
	Checks map[string]Checker
	// Events is the EVENTS stream GET /v1/watch forwards; nil means the
	// watch stream carries the lock view's changes only.
	Events Events
}

// AuthMode selects how API users authenticate.
type AuthMode string

// Auth modes.
const (
	// AuthNone lets everyone in as admin: development only; New logs a
	// warning.
	AuthNone AuthMode = "noauth"
	// AuthHTTPBasic checks users against an htpasswd file (bcrypt entries),
	// as Ironic's standalone mode does.
	AuthHTTPBasic AuthMode = "http_basic"
)

// Role is what an authenticated user may do.
type Role string

// Roles.
const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleReader may only read (GET and HEAD).
	RoleReader Role = "reader"
)

// Defaults of Config, applied where a field is zero (Auth and DefaultRole
// default to AuthNone and RoleAdmin).
const (
	// DefaultMaxBodyBytes caps request bodies: 1 MiB.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultLockAttempts and DefaultLockInterval are the standard-mode
	// lock attempts before 409 NodeLocked: the lock's, Ironic's 3 × 1s.
	DefaultLockAttempts = lock.DefaultAttempts
	DefaultLockInterval = lock.DefaultInterval
	// DefaultClaimTimeout is how long a handed-off ticket waits for its
	// conductor: the lock's.
	DefaultClaimTimeout = lock.DefaultClaimTimeout
	// DefaultHeartbeatTimeout is told to agents at lookup: Ironic's 300s.
	DefaultHeartbeatTimeout = 300 * time.Second
	// DefaultLockViewTimeout bounds the lock reads of one request.
	DefaultLockViewTimeout = 2 * time.Second
	// DefaultBusiestLocks is how many nodes the per-node lock gauges cover.
	DefaultBusiestLocks = 20
	// DefaultReadHeaderTimeout is how long a client may take to send a
	// request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultWatchInterval is how often GET /v1/watch reads the whole lock
	// index again (a resync; events announce every other change).
	DefaultWatchInterval = 30 * time.Second
	// DefaultMaxConns is how many client connections Serve holds open at
	// once: far more than the API's clients need (a conductor, the CLI,
	// agents each pool a few), far fewer than a process's descriptor limit.
	DefaultMaxConns = 4096
)

// Config holds the API's settings. Every zero value means the documented
// default.
type Config struct {
	// Auth is the auth mode; "" means AuthNone.
	Auth AuthMode
	// HTPasswd is the htpasswd file for AuthHTTPBasic (bcrypt entries only).
	HTPasswd string
	// Roles maps htpasswd users to roles; users not in it get DefaultRole.
	Roles map[string]Role
	// DefaultRole is the role of users not in Roles; "" means RoleAdmin
	// (Ironic's http_basic lets every listed user do everything).
	DefaultRole Role
	// MaxBodyBytes caps request bodies (413 beyond); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// LockAttempts and LockInterval are the standard-mode lock attempts
	// before 409 NodeLocked; 0 means DefaultLockAttempts and
	// DefaultLockInterval, Ironic's 3 × 1s.
	LockAttempts int
	LockInterval time.Duration
	// ClaimTimeout is how long a task's lock ticket may wait for its
	// conductor after the API hands the lock off; 0 means
	// DefaultClaimTimeout.
	ClaimTimeout time.Duration
	// MaxDeploys and MaxCleans bound the nodes of one conductor group
	// deploying and cleaning at once: an action past them is refused with
	// 503 (Ironic's ConcurrentActionLimit). Set them as the conductors'
	// (ironfleet conductor --max-deploys, --max-cleans); 0 means
	// provision.DefaultMaxDeploys and DefaultMaxCleans.
	MaxDeploys, MaxCleans int
	// HeartbeatTimeout is told to agents at lookup; 0 means
	// DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// PublicURL is the base of links in responses (http://host:6385); ""
	// means the request's own scheme and Host header.
	PublicURL string
	// LockViewTimeout bounds the lock reads behind reservation fields, the
	// lock view and the lock gauges; 0 means DefaultLockViewTimeout.
	LockViewTimeout time.Duration
	// BusiestLocks is how many nodes the per-node lock gauges cover; 0
	// means DefaultBusiestLocks.
	BusiestLocks int
	// ReadHeaderTimeout is how long Serve lets a client take to send a
	// request's headers before closing the connection (slow clients hold
	// a connection and a goroutine each); 0 means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long Serve keeps a keep-alive connection open
	// waiting for its next request; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// WatchInterval is how often each GET /v1/watch stream (the web
	// console's) reads the whole lock index again, for the changes no
	// event announces (a lease that lapsed, a lock event dropped);
	// 0 means DefaultWatchInterval.
	WatchInterval time.Duration
	// MaxConns bounds the client connections Serve holds open at once,
	// so that the file descriptors the API uses do not grow with its
	// clients: past it, new connections wait in the kernel's accept
	// queue until one closes. 0 means DefaultMaxConns.
	MaxConns int
	// Logger receives request and error logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the API's metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves; nil means the Registerer when it is
	// also a Gatherer (a *prometheus.Registry), else the private registry.
	Gatherer prometheus.Gatherer
}

func (c *Config) setDefaults() error {
	switch c.Auth {
	case "":
		c.Auth = AuthNone
	case AuthNone, AuthHTTPBasic:
	default:
		return fmt.Errorf("api: auth mode %q: want %s or %s", c.Auth, AuthNone, AuthHTTPBasic)
	}
	if c.Auth == AuthHTTPBasic && c.HTPasswd == "" {
		return errors.New("api: auth http_basic needs an htpasswd file")
	}
	if c.DefaultRole == "" {
		c.DefaultRole = RoleAdmin
	}
	for u, r := range c.Roles {
		if r != RoleAdmin && r != RoleReader {
			return fmt.Errorf("api: role %q of user %q: want %s or %s", r, u, RoleAdmin, RoleReader)
		}
	}
	if c.DefaultRole != RoleAdmin && c.DefaultRole != RoleReader {
		return fmt.Errorf("api: default role %q: want %s or %s", c.DefaultRole, RoleAdmin, RoleReader)
	}
	if c.MaxBodyBytes < 0 || c.LockAttempts < 0 || c.LockInterval < 0 || c.ClaimTimeout < 0 ||
		c.HeartbeatTimeout < 0 || c.LockViewTimeout < 0 || c.BusiestLocks < 0 ||
		c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 || c.WatchInterval < 0 || c.MaxConns < 0 {
		return errors.New("api: negative size, count or duration in Config")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.LockAttempts == 0 {
		c.LockAttempts = DefaultLockAttempts
	}
	if c.LockInterval == 0 {
		c.LockInterval = DefaultLockInterval
	}
	if c.ClaimTimeout == 0 {
		c.ClaimTimeout = DefaultClaimTimeout
	}
	if c.MaxDeploys <= 0 {
		c.MaxDeploys = provision.DefaultMaxDeploys
	}
	if c.MaxCleans <= 0 {
		c.MaxCleans = provision.DefaultMaxCleans
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.LockViewTimeout == 0 {
		c.LockViewTimeout = DefaultLockViewTimeout
	}
	if c.BusiestLocks == 0 {
		c.BusiestLocks = DefaultBusiestLocks
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WatchInterval == 0 {
		c.WatchInterval = DefaultWatchInterval
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		r := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = r, r
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		} else {
			c.Gatherer = prometheus.NewRegistry()
		}
	}
	return nil
}

// Server is the HTTP API.
type Server struct {
	deps    Deps
	cfg     Config
	log     *slog.Logger
	basic   *basicAuth // http_basic's users; nil with noauth
	drivers []string
	metrics *metrics
	engine  *gin.Engine
	// guarded is the engine behind the cross-origin check (crossOrigin).
	guarded http.Handler
	// dispatch hands nodes to the tasks user actions publish.
	dispatch *dispatch.Dispatcher
	// holders batches the lock reads of concurrent reservation fields.
	holders *holderBatch
	// closing is cancelled when Serve shuts down, which ends the watch
	// streams: Shutdown waits for requests, and a stream never ends alone.
	closing      context.Context
	closeStreams context.CancelFunc
	// admissions are the limited actions this process dispatched that
	// the node cache may not show yet (admitted).
	admissions admissions
}

// New validates deps and cfg, reads the htpasswd file when needed,
// registers the API's metrics and builds the routes.
func New(deps Deps, cfg Config) (*Server, error) {
	if deps.Nodes == nil || deps.Ports == nil || deps.Tasks == nil || deps.Locks == nil ||
		deps.Conductors == nil || deps.Drivers == nil || deps.Records == nil {
		return nil, errors.New("api: Deps needs Nodes, Ports, Tasks, Locks, Conductors, Drivers and Records")
	}
	if len(deps.DriverNames) == 0 {
		return nil, errors.New("api: Deps.DriverNames is empty: no hardware type to offer")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		deps:    deps,
		cfg:     cfg,
		log:     cfg.Logger,
		drivers: slices.Sorted(slices.Values(deps.DriverNames)),
	}
	s.closing, s.closeStreams = context.WithCancel(context.Background()) //nolint:gosec // Serve calls closeStreams when it shuts down
	s.dispatch = dispatch.New(deps.Tasks, deps.Nodes, dispatch.Config{ClaimTimeout: cfg.ClaimTimeout, Logger: cfg.Logger})
	s.holders = &holderBatch{read: deps.Locks.Snapshots, timeout: cfg.LockViewTimeout}
	if cfg.Auth == AuthHTTPBasic {
		users, err := readHTPasswd(cfg.HTPasswd)
		if err != nil {
			return nil, err
		}
		if s.basic, err = newBasicAuth(users); err != nil {
			return nil, err
		}
	} else {
		s.log.Warn("API AUTHENTICATION IS OFF (auth=noauth): anyone who can reach the API may provision and delete nodes; use http_basic outside development")
	}
	m, err := newMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	gin.SetMode(gin.ReleaseMode)
	s.engine = gin.New()
	s.engine.RedirectTrailingSlash = false
	s.engine.RedirectFixedPath = false
	s.routes()
	s.guarded = s.crossOrigin(s.engine)
	return s, nil
}

// Handler is the API as an http.Handler. A trailing slash is dropped
// before routing, as Ironic accepts both forms: clients (python-ironicclient)
// send "/v1/ports/?node=…", and a redirect with a relative Location breaks
// them.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r.URL.Path = strings.TrimRight(p, "/")
			if r.URL.Path == "" {
				r.URL.Path = "/"
			}
			r.URL.RawPath = ""
		}
		stripJSONSuffix(r)
		s.guarded.ServeHTTP(w, r)
	})
}

// stripJSONSuffix drops a path's ".json" for a request that names a
// version below 1.91, as Ironic's JsonExtensionMiddleware
// (ironic/api/middleware/json_ext.py) does: a relic of pecan's content
// type guessing that 1.91 removed. Without a version header nothing is
// stripped, as there.
func stripJSONSuffix(r *http.Request) {
	p, ok := strings.CutSuffix(r.URL.Path, ".json")
	if !ok || r.Header.Get(headerVersion) == "" {
		return
	}
	if v, err := parseVersion(r.Header.Get(headerVersion)); err == nil && v.Minor > 0 && !v.AtLeast(91) {
		r.URL.Path, r.URL.RawPath = p, ""
	}
}

// httpServer is the http.Server Serve runs: the Handler with the
// connection timeouts of Config.
func (s *Server) httpServer() *http.Server {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
	}
	hs.RegisterOnShutdown(s.closeStreams)
	return hs
}

// Serve answers on l until ctx is done, then shuts down gracefully. It
// holds at most MaxConns connections open, closes connections whose headers
// take longer than ReadHeaderTimeout and keep-alive connections idle for
// IdleTimeout.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return graceful.Serve(ctx, s.httpServer(), netutil.LimitListener(l, s.cfg.MaxConns), 10*time.Second)
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	out := gin.H{}
	status := http.StatusOK
	for name, chk := range s.deps.Checks {
		if err := chk.Check(ctx); err != nil {
			out[name] = err.Error()
			status = http.StatusServiceUnavailable
			continue
		}
		out[name] = "ok"
	}
	c.JSON(status, out)
}
