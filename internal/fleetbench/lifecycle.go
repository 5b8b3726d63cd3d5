package fleetbench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Defaults of LifecycleConfig, applied where a field is zero.
const (
	DefaultLifecycleNodes = 200
	DefaultClients        = 8
	DefaultClientPoll     = 50 * time.Millisecond
)

// LifecycleConfig is one run of the lifecycle benchmark (issue 18's
// throughput): Clients clients take Nodes nodes through enroll → manageable
// → available → active on one fleet with instant machines, and every node's
// timeline is traced. Every zero value is documented.
type LifecycleConfig struct {
	// Nodes is how many nodes go through the lifecycle; zero means
	// DefaultLifecycleNodes.
	Nodes int
	// Clients is how many clients share the nodes (node i is client
	// i mod Clients's); zero means DefaultClients.
	Clients int
	// Poll is how often a client with nothing to send reads its nodes'
	// states (one list request); zero means DefaultClientPoll.
	Poll time.Duration
	// Watch makes each client follow GET /v1/watch as well, as a
	// controller's informer does: a provision state change of one of its
	// nodes wakes it to read the list at once, and Poll is then only its
	// resync when nothing announced a change.
	Watch bool
	// Conductors is how many conductors the fleet runs; zero means
	// fleet.DefaultConductors.
	Conductors int
	// HeartbeatTimeout is what the API tells agents; zero means
	// DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// ImageSize is the image every node writes; zero means DefaultImageSize.
	ImageSize int
	// Timeout bounds the lifecycle; zero means DefaultTimeout.
	Timeout time.Duration
	// DataDir holds the fleet's data, removed after the run; empty means a
	// temporary directory.
	DataDir string
	// RedisServer is the redis-server binary; empty means
	// redisproc.DefaultBinary.
	RedisServer string
	// SyncInterval is how often the fleet's NATS and Redis fsync
	// (fleet.DevConfig.SyncInterval); zero means
	// fleet.DefaultTempSyncInterval, as `ironfleet dev` with its temporary
	// data directory, and negative means on every write.
	SyncInterval time.Duration
	// Logger receives the fleet's warnings; nil means none.
	Logger *slog.Logger
	// CPUProfile receives a CPU profile (runtime/pprof) of the measured
	// part of the run, from the first enroll to the last node seen
	// active; nil means none.
	CPUProfile io.Writer
	// Target, when set, is an API of another process the clients drive
	// instead of a fleet of this one (target.go); the fields above about
	// the fleet are then unused. Nil means the in-process fleet.
	Target *Target
}

// Hop is one hop of the nodes' timelines: how long it took, over the nodes
// whose timeline has both of its ends.
type Hop struct {
	Name  string  `json:"name"`
	Nodes int     `json:"nodes"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	Maxms float64 `json:"max_ms"`
}

// LifecycleResult is what a lifecycle run measured.
type LifecycleResult struct {
	Nodes   int `json:"nodes"`
	Clients int `json:"clients"`
	Active  int `json:"active"`
	// Seconds is the wall time from the first enroll request to the last
	// node seen active; NodesPerSecond is Active over it.
	Seconds        float64 `json:"seconds"`
	NodesPerSecond float64 `json:"nodes_per_second"`
	// CPUSeconds is the CPU (user + system) this process (API, conductors,
	// embedded NATS, simulated machines and agents, and the clients) and
	// its redis-server used over the run; CPUPerNode is over Active, and
	// CoresBusy over Seconds.
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPerNode float64 `json:"cpu_s_per_node"`
	CoresBusy  float64 `json:"cores_busy"`
	// Requests counts the clients' HTTP requests; Conflicts the 409/503
	// answers among them (each retried).
	Requests  int `json:"requests"`
	Conflicts int `json:"conflicts"`
	// Stuck counts nodes not active when the run ended.
	Stuck int `json:"stuck"`
	// Outcomes counts the conductors' tasks by outcome
	// (ironfleet_conductor_tasks_total): anything but done is a task that
	// waited for its lock, was retried or gave up.
	Outcomes map[string]int `json:"task_outcomes"`
	// StoredPerNode counts, per node, the messages JetStream stored in
	// each stream over the run (tasks, events, node records, ...): each is
	// a write and a round trip on some hop.
	StoredPerNode map[string]float64 `json:"stored_per_node"`
	// Hops is the timeline's breakdown, in the order a node meets them.
	Hops []Hop `json:"hops"`
	// Target is set by a run against a Target (where Outcomes are nil
	// without conductor metrics, StoredPerNode is nil: unknown, and CPU is
	// the target's processes' plus the clients').
	Target *TargetResult `json:"target,omitempty"`
}

// The hops of a node's timeline, each from the mark before it to its own
// (marks are when something was observed: by a client, on the EVENTS
// stream, or in the fleet's debug logs).
var lifecycleHops = []struct{ name, from, to string }{
	{"enroll: POST node + port", "create", "created"},
	{"manage: PUT → 202", "created", "manage 202"},
	{"manage: 202 → manageable", "manage 202", "manageable"},
	{"manage: manageable → client sees it", "manageable", "manageable seen"},
	{"provide: client's queue (seen → PUT sent)", "manageable seen", "provide sent"},
	{"provide: PUT sent → 202", "provide sent", "provide 202"},
	{"provide: 202 → available", "provide 202", "available"},
	{"provide: available → client sees it", "available", "available seen"},
	{"deploy: client's queue (seen → PUT sent)", "available seen", "deploy sent"},
	{"deploy: PUT sent → 202 (lock, first move, publish, handoff)", "deploy sent", "deploy 202"},
	{"deploy: 202 → task pulled", "deploy 202", "deploy pulled"},
	{"deploy: pulled → lock claimed", "deploy pulled", "deploy claimed"},
	{"deploy: claimed → wait call-back (boot step)", "deploy claimed", "wait call-back"},
	{"agent: wait call-back → looked up", "wait call-back", "looked up"},
	{"agent: looked up → heartbeat task pulled", "looked up", "heartbeat pulled"},
	{"continuation: heartbeat → dispatched (move, publish, handoff)", "heartbeat pulled", "continued"},
	{"continuation: dispatched → pulled", "continued", "continue pulled"},
	{"continuation: pulled → lock claimed", "continue pulled", "continue claimed"},
	{"continuation: claimed → active (image, reboot)", "continue claimed", "active"},
	{"active → client sees it", "active", "active seen"},
	{"total: POST node → active seen", "create", "active seen"},
}

// timelines collects per node the time of each mark.
type timelines struct {
	mu    sync.Mutex
	marks map[string]map[string]time.Time // node UUID → mark → first time seen
	names map[string]string               // node name → UUID (the agents log names only by UUID too, but clients know names)
}

func newTimelines() *timelines {
	return &timelines{marks: map[string]map[string]time.Time{}, names: map[string]string{}}
}

// mark records the first time of mark for node.
func (t *timelines) mark(node, mark string, at time.Time) {
	if node == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.marks[node]
	if m == nil {
		m = map[string]time.Time{}
		t.marks[node] = m
	}
	if _, ok := m[mark]; !ok {
		m[mark] = at
	}
}

// event marks what an event on the EVENTS stream says.
func (t *timelines) event(ev wire.Event) {
	switch {
	case ev.Type == wire.EventProvisionState && ev.Op == wire.OpManage && ev.To == string(wire.StateManageable):
		t.mark(ev.Node, "manageable", ev.Time)
	case ev.Type == wire.EventProvisionState && ev.To == string(wire.StateAvailable):
		t.mark(ev.Node, "available", ev.Time)
	case ev.Type == wire.EventProvisionState && ev.To == string(wire.StateWaitCallback) && ev.Op == wire.OpDeploy:
		t.mark(ev.Node, "wait call-back", ev.Time)
	case ev.Type == wire.EventProvisionState && ev.From == string(wire.StateWaitCallback) && ev.To == string(wire.StateDeploying):
		t.mark(ev.Node, "continued", ev.Time)
	case ev.Type == wire.EventProvisionState && ev.To == string(wire.StateActive):
		t.mark(ev.Node, "active", ev.Time)
	}
}

// hops computes the breakdown.
func (t *timelines) hops() []Hop { return t.hopsOf(lifecycleHops) }

// hopsOf computes the breakdown into hops.
func (t *timelines) hopsOf(hops []struct{ name, from, to string }) []Hop {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Hop, 0, len(hops))
	for _, h := range hops {
		var d []float64
		for _, m := range t.marks {
			from, ok1 := m[h.from]
			to, ok2 := m[h.to]
			if ok1 && ok2 {
				d = append(d, ms(to.Sub(from)))
			}
		}
		slices.Sort(d)
		hop := Hop{Name: h.name, Nodes: len(d), P50ms: quantile(d, 0.5), P99ms: quantile(d, 0.99)}
		if len(d) > 0 {
			hop.Maxms = d[len(d)-1]
		}
		out = append(out, hop)
	}
	return out
}

// traceHandler is the fleet's slog handler during a lifecycle run: it marks
// the hops the fleet logs (a task pulled, a lock claimed, an agent looked
// up) and passes warnings on to next.
type traceHandler struct {
	t     *timelines
	next  slog.Handler
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l == slog.LevelDebug || l == slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	var mark string
	switch r.Message {
	case "task started":
		mark = "pulled"
	case "lock claimed":
		mark = "claimed"
	case "looked up":
		mark = "looked up"
	}
	if mark != "" {
		var node, op string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "node":
				node = a.Value.String()
			case "op":
				op = a.Value.String()
			}
			return true
		})
		switch {
		case mark == "looked up":
			h.t.mark(node, mark, r.Time)
		case op == string(wire.OpDeploy):
			h.t.mark(node, "deploy "+mark, r.Time)
		case op == string(wire.OpContinueDeploy):
			h.t.mark(node, "continue "+mark, r.Time)
		case op == string(wire.OpHeartbeat) && mark == "pulled":
			h.t.mark(node, "heartbeat pulled", r.Time)
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.WithAttrs(h.attrs).Handle(ctx, r)
	}
	return nil
}

func (h *traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &traceHandler{t: h.t, next: h.next, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *traceHandler) WithGroup(string) slog.Handler { return h }

// RunLifecycle runs the lifecycle benchmark once.
func RunLifecycle(ctx context.Context, cfg LifecycleConfig) (LifecycleResult, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = DefaultLifecycleNodes
	}
	if cfg.Clients <= 0 {
		cfg.Clients = DefaultClients
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultClientPoll
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if cfg.ImageSize <= 0 {
		cfg.ImageSize = DefaultImageSize
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = fleet.DefaultTempSyncInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Target != nil {
		return runTarget(ctx, cfg)
	}
	r := LifecycleResult{Nodes: cfg.Nodes, Clients: cfg.Clients}
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "ironfleet-bench-lifecycle-")
		if err != nil {
			return r, err
		}
		dir = d
	}
	defer os.RemoveAll(dir)

	tl := newTimelines()
	d, err := fleet.StartDev(ctx, fleet.DevConfig{
		DataDir: dir, APIAddr: "127.0.0.1:0", Nodes: cfg.Nodes, NoEnroll: true, Conductors: cfg.Conductors,
		ImageSize: cfg.ImageSize, HeartbeatTimeout: cfg.HeartbeatTimeout, RedisServer: cfg.RedisServer,
		SyncInterval: max(cfg.SyncInterval, 0),
		Logger:       slog.New(&traceHandler{t: tl, next: cfg.Logger.Handler()}),
	})
	if err != nil {
		return r, err
	}
	defer d.Stop() //nolint:contextcheck // Stop bounds its own shutdown and must run after ctx ends too
	rc, err := fleet.NewRedis(ctx, d.RedisURL())
	if err != nil {
		return r, err
	}
	defer rc.Close()
	imageSum, err := imageChecksum(ctx, d.ImageURL())
	if err != nil {
		return r, err
	}

	cpu0, err := cpuSeconds(ctx, rc)
	if err != nil {
		return r, err
	}
	if cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(cfg.CPUProfile); err != nil {
			return r, fmt.Errorf("cpu profile: %w", err)
		}
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	stats := runClients(lctx, cfg, d.APIURL(), func() *lifecycleClient {
		return &lifecycleClient{c: newClient(d.APIURL()).Client, tl: tl, image: d.ImageURL(), imageSum: imageSum, poll: cfg.Poll}
	})
	r.Seconds = time.Since(start).Seconds()
	if cfg.CPUProfile != nil {
		pprof.StopCPUProfile()
	}
	cpu1, err := cpuSeconds(ctx, rc)
	if err != nil {
		return r, err
	}
	var errs []error
	for _, s := range stats {
		r.Active += s.active
		r.Requests += s.requests
		r.Conflicts += s.conflicts
		if s.err != nil {
			errs = append(errs, s.err)
		}
	}
	r.NodesPerSecond = float64(r.Active) / r.Seconds
	r.CPUSeconds = cpu1 - cpu0
	r.CoresBusy = r.CPUSeconds / r.Seconds
	if r.Active > 0 {
		r.CPUPerNode = r.CPUSeconds / float64(r.Active)
	}
	r.Stuck = cfg.Nodes - r.Active
	if r.Outcomes, err = taskOutcomes(d); err != nil {
		return r, err
	}

	// The events of the run, read back after it (so that reading them
	// costs the run nothing).
	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{d.NATSURL()}, Name: "bench-lifecycle"})
	if err != nil {
		return r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return r, err
	}
	if err := transport.SubscribeEvents(ctx, js, transport.EventSubscription{}, tl.event); err != nil {
		return r, err
	}
	r.StoredPerNode = map[string]float64{}
	for name := range js.StreamNames(ctx).Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return r, err
		}
		if info := st.CachedInfo(); info != nil && info.State.LastSeq > 0 {
			r.StoredPerNode[name] = float64(info.State.LastSeq) / float64(cfg.Nodes)
		}
	}
	r.Hops = tl.hops()
	return r, errors.Join(errs...)
}

// taskOutcomes counts the conductors' tasks by outcome.
// runClients runs cfg.Clients clients, each made by newCl, over cfg.Nodes
// nodes (node i is client i mod cfg.Clients's) until they are done or ctx
// ends, and returns each one's stats. With cfg.Watch a client also follows
// api's GET /v1/watch.
func runClients(ctx context.Context, cfg LifecycleConfig, api string, newCl func() *lifecycleClient) []clientStats {
	var wg sync.WaitGroup
	stats := make([]clientStats, cfg.Clients)
	for c := range cfg.Clients {
		var mine []int
		for i := c; i < cfg.Nodes; i += cfg.Clients {
			mine = append(mine, i)
		}
		wg.Go(func() {
			cl := newCl()
			if cfg.Watch {
				wctx, stop := context.WithCancel(ctx)
				var watching sync.WaitGroup
				defer watching.Wait()
				defer stop()
				cl.wake = make(chan struct{}, 1)
				watching.Go(func() { cl.watch(wctx, api) })
			}
			stats[c] = cl.run(ctx, mine)
		})
	}
	wg.Wait()
	return stats
}

func taskOutcomes(d *fleet.Dev) (map[string]int, error) {
	mfs, err := d.Registry.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "ironfleet_conductor_tasks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out, nil
}

// imageChecksum is the SHA-256 of the image at url, as instance_info's
// image_checksum names it.
func imageChecksum(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cpuSeconds is the CPU time this process and the fleet's redis-server
// have used so far.
func cpuSeconds(ctx context.Context, rc *redis.Client) (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	self := float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	info, err := rc.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var redisCPU float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			redisCPU += f
		}
	}
	return self + redisCPU, nil
}

type clientStats struct {
	active, requests, conflicts int
	err                         error
}

// lifecycleClient takes its nodes through the lifecycle as a controller
// would (metal3's baremetal-operator reconciles each host on its own): it
// enrolls them all, asks each for its next state as soon as it has seen the
// node reach the one before, and otherwise reads its nodes' states every
// poll.
type lifecycleClient struct {
	c        *apiclient.Client
	tl       *timelines
	image    string
	imageSum string
	poll     time.Duration
	// node is the body of node i and its port's MAC; nil means the
	// in-process fleet's simulated machine i (driver sim).
	node           func(i int) (body map[string]any, mac string)
	stats          clientStats
	uuids, pending map[string]string // node UUID → name; node UUID → state awaited
	// wake, when not nil, is signalled by watch when one of the client's
	// nodes changed provision state.
	wake chan struct{}
	// mu guards uuids, which watch reads.
	mu sync.Mutex
}

// the lifecycle: having seen a node in state, ask for next and await want.
var lifecycleSteps = map[string]struct{ target, want, mark string }{
	"manageable": {"provide", "available", "provide"},
	"available":  {"active", "active", "deploy"},
}

func (l *lifecycleClient) run(ctx context.Context, mine []int) clientStats {
	l.mu.Lock()
	l.uuids, l.pending = map[string]string{}, map[string]string{}
	l.mu.Unlock()
	for _, i := range mine {
		if err := l.enroll(ctx, i); err != nil {
			l.stats.err = err
			return l.stats
		}
	}
	for len(l.pending) > 0 {
		// The short list (uuid, provision_state, …) is the cheapest read
		// of every node's state; a failed node's last_error is read then.
		type state struct {
			UUID  string `json:"uuid"`
			State string `json:"provision_state"`
		}
		l.stats.requests++
		list, err := apiclient.ListNodes[state](ctx, l.c, "/v1/nodes?limit=1000")
		if err != nil {
			l.stats.err = err
			return l.stats
		}
		now := time.Now()
		for _, n := range list {
			want, ok := l.pending[n.UUID]
			if !ok || n.State != want {
				if ok && (strings.HasSuffix(n.State, "failed") || n.State == "error") {
					l.stats.err = l.failed(ctx, n.UUID)
					return l.stats
				}
				continue
			}
			l.tl.mark(n.UUID, n.State+" seen", now)
			step, ok := lifecycleSteps[n.State]
			if !ok {
				delete(l.pending, n.UUID)
				l.stats.active++
				continue
			}
			if err := l.set(ctx, n.UUID, step.target, step.mark); err != nil {
				l.stats.err = err
				return l.stats
			}
			l.pending[n.UUID] = step.want
		}
		if len(l.pending) > 0 && l.idle(ctx) != nil {
			l.stats.err = fmt.Errorf("%d nodes not active: %w", len(l.pending), ctx.Err())
			return l.stats
		}
	}
	return l.stats
}

// idle waits for the next read of the list: a poll, or a wake from watch.
func (l *lifecycleClient) idle(ctx context.Context) error {
	if l.wake == nil {
		return wait.Sleep(ctx, l.poll)
	}
	t := time.NewTimer(l.poll)
	defer t.Stop()
	select {
	case <-l.wake:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// watch follows the API's event stream (GET /v1/watch) until ctx ends,
// waking the client when one of its nodes reaches a state it awaits. A
// stream that ends or fails is opened again; meanwhile the poll goes on.
func (l *lifecycleClient) watch(ctx context.Context, base string) {
	hc := &http.Client{} // a stream: bounded by ctx, not by a timeout
	for ctx.Err() == nil {
		if err := l.follow(ctx, hc, base+"/v1/watch"); err != nil && ctx.Err() == nil {
			_ = wait.Sleep(ctx, l.poll)
		}
	}
}

// follow reads one watch stream.
func (l *lifecycleClient) follow(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: HTTP %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && name == "event":
			var ev wire.Event
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) != nil || ev.Type != wire.EventProvisionState {
				continue
			}
			l.mu.Lock()
			_, mine := l.uuids[ev.Node]
			l.mu.Unlock()
			if mine && lifecycleAwaited[ev.To] {
				select {
				case l.wake <- struct{}{}:
				default:
				}
			}
		}
	}
	return sc.Err()
}

// lifecycleAwaited are the states a lifecycle client waits for.
var lifecycleAwaited = map[string]bool{"manageable": true, "available": true, "active": true}

// failed is the error of a node found failed.
func (l *lifecycleClient) failed(ctx context.Context, uuid string) error {
	var n struct {
		State     string `json:"provision_state"`
		LastError string `json:"last_error"`
	}
	if err := l.c.Do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &n); err != nil {
		return err
	}
	return fmt.Errorf("node %s is %s: %s", uuid, n.State, n.LastError)
}

// enroll creates node i and its port and asks for manage.
func (l *lifecycleClient) enroll(ctx context.Context, i int) error {
	name, mac := fleet.SimMachine(i)
	body := map[string]any{
		"name": name, "driver": fleet.Sim, "driver_info": map[string]any{"sim_machine": name},
		"instance_info":   map[string]any{"image_source": l.image, "image_checksum": l.imageSum},
		"automated_clean": false,
	}
	if l.node != nil {
		body, mac = l.node(i)
		name, _ = body["name"].(string)
	}
	var node struct {
		UUID string `json:"uuid"`
	}
	t0 := time.Now()
	err := l.create(ctx, "/v1/nodes", body, &node)
	if apiclient.IsStatus(err, http.StatusConflict) {
		// A retried create whose first try was stored after all: the
		// node is there by its name.
		l.stats.requests++
		err = l.c.Do(ctx, http.MethodGet, "/v1/nodes/"+name, nil, &node)
	}
	if err != nil {
		return fmt.Errorf("enroll %s: %w", name, err)
	}
	err = l.create(ctx, "/v1/ports", map[string]any{"node_uuid": node.UUID, "address": mac}, nil)
	if err != nil && !apiclient.IsStatus(err, http.StatusConflict) { // 409: a retried port that was stored
		return fmt.Errorf("port of %s: %w", name, err)
	}
	l.tl.mark(node.UUID, "create", t0)
	l.tl.mark(node.UUID, "created", time.Now())
	l.mu.Lock()
	l.uuids[node.UUID] = name
	l.mu.Unlock()
	if err := l.set(ctx, node.UUID, "manage", "manage"); err != nil {
		return err
	}
	l.pending[node.UUID] = "manageable"
	return nil
}

// create POSTs body to path, asking again while the API answers 503 (its
// and Ironic's "retry": a dependency is slow or down), as SetProvisionState
// does; a 409 after a retry may be the first try's success.
func (l *lifecycleClient) create(ctx context.Context, path string, body, out any) error {
	for {
		l.stats.requests++
		err := l.c.Do(ctx, http.MethodPost, path, body, out)
		if !apiclient.IsStatus(err, http.StatusServiceUnavailable) {
			return err
		}
		l.stats.conflicts++
		if err := wait.Sleep(ctx, l.c.LockedRetry); err != nil {
			return err
		}
	}
}

// set asks for target, retrying on 409/503 as SetProvisionState does, and
// marks the 202.
func (l *lifecycleClient) set(ctx context.Context, uuid, target, mark string) error {
	l.tl.mark(uuid, mark+" sent", time.Now())
	conflicts, err := l.c.SetProvisionState(ctx, uuid, target)
	l.stats.requests += conflicts + 1
	l.stats.conflicts += conflicts
	if err != nil {
		return fmt.Errorf("%s %s: %w", target, uuid, err)
	}
	l.tl.mark(uuid, mark+" 202", time.Now())
	return nil
}
