// Package fleetbench is `ironfleet bench fleet`: a whole fleet in one
// process (internal/fleet's dev fleet) deploys N simulated nodes at once
// while pests — clients that take each node's lock the way a serial console
// and heartbeats do — contend for the same locks, once per handoff strategy
// (Strategy), each on a fresh fleet. It measures what each
// strategy loses: nodes stuck in deploying, deploy time, lock wait, raced
// handoffs and Redis commands per deploy.
package fleetbench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
)

// Defaults of Config, applied where a field is zero.
const (
	DefaultNodes            = 500
	DefaultPests            = 2
	DefaultPestHold         = 200 * time.Millisecond
	DefaultPestGap          = 100 * time.Millisecond
	DefaultTimeout          = 2 * time.Minute
	DefaultHeartbeatTimeout = 5 * time.Second
	DefaultImageSize        = 64 << 10
)

// Config is one run of the benchmark; every zero value is documented.
type Config struct {
	// Nodes is how many simulated nodes deploy at once; zero means
	// DefaultNodes.
	Nodes int
	// Strategies run in this order, each on a fresh fleet; empty means all
	// Strategies.
	Strategies []Strategy
	// Pests is how many pests contend for each node's lock; zero means
	// DefaultPests, negative means none.
	Pests int
	// PestHold is how long a pest holds the lock once it has it; zero
	// means DefaultPestHold.
	PestHold time.Duration
	// PestGap is how long a pest pauses after each try (taken or not),
	// jittered ±50 %; zero means DefaultPestGap.
	PestGap time.Duration
	// Timeout is how long the deploys of one strategy may take; a node not
	// active by then is stuck. Zero means DefaultTimeout.
	Timeout time.Duration
	// Conductors is how many conductors each fleet runs; zero means
	// fleet.DefaultConductors.
	Conductors int
	// LockAttempts and LockInterval are the lock's standard mode for the
	// API and the conductors (the continuation under release-reacquire);
	// zero means Ironic's 3 × 1s.
	LockAttempts int
	LockInterval time.Duration
	// HeartbeatTimeout is what the API tells agents (they beat every
	// 30–60 % of it); zero means DefaultHeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// ImageSize is the image every node writes; zero means
	// DefaultImageSize.
	ImageSize int
	// DataDir holds one data directory per strategy, removed after it ran;
	// empty means a temporary directory.
	DataDir string
	// RedisServer is the redis-server binary; empty means
	// redisproc.DefaultBinary.
	RedisServer string
	// ReplaceConductorAfter, when not zero, stops one conductor this long
	// into the deploys and starts a replacement (Scale); zero means none.
	ReplaceConductorAfter time.Duration
	// SyncInterval is how often the fleets' NATS and Redis fsync their
	// data (fleet.DevConfig.SyncInterval), as LifecycleConfig's: zero means
	// fleet.DefaultTempSyncInterval, as `ironfleet dev` on a temporary
	// directory (a fleet's data is removed after its run), and negative
	// means on every write.
	SyncInterval time.Duration
	// Logger receives the fleets' logs; nil means none.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Nodes <= 0 {
		c.Nodes = DefaultNodes
	}
	if len(c.Strategies) == 0 {
		c.Strategies = slices.Clone(Strategies)
	}
	if c.Pests == 0 {
		c.Pests = DefaultPests
	}
	if c.Pests < 0 {
		c.Pests = 0
	}
	if c.PestHold <= 0 {
		c.PestHold = DefaultPestHold
	}
	if c.PestGap <= 0 {
		c.PestGap = DefaultPestGap
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ImageSize <= 0 {
		c.ImageSize = DefaultImageSize
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = fleet.DefaultTempSyncInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Result is what one strategy did.
type Result struct {
	Strategy string `json:"strategy"`
	Nodes    int    `json:"nodes"`
	// Active nodes reached active within the timeout; the others are Stuck.
	Active int `json:"active"`
	Stuck  int `json:"stuck"`
	// StuckIn counts the stuck nodes by the provision state they were left in.
	StuckIn map[string]int `json:"stuck_in,omitempty"`
	// Deploy time: from the accepted PUT to the node observed active, over
	// the active nodes.
	DeployP50ms float64 `json:"deploy_p50_ms"`
	DeployP99ms float64 `json:"deploy_p99_ms"`
	DeployMaxms float64 `json:"deploy_max_ms"`
	// LockWaitP99ms is the p99 of the fleet's own lock waits (API and
	// conductors, every mode, granted acquires only) during the deploys,
	// estimated from the ironfleet_lock_wait_seconds histogram's buckets.
	LockWaitP99ms float64 `json:"lock_wait_p99_ms"`
	// RacedHandoffs counts continuations that found their node's lock
	// taken by someone else (never with the ticket handoff); GaveUp those that
	// gave up on it, leaving the node stuck.
	RacedHandoffs int `json:"raced_handoffs"`
	GaveUp        int `json:"gave_up"`
	// Conflicts counts the 409 NodeLocked (and 503 limit) answers the
	// deploy requests got before being accepted.
	Conflicts int `json:"conflicts"`
	// RedisCommandsPerDeploy is Redis's total_commands_processed over the
	// deploy phase divided by Nodes: everything, pests included, commands
	// run inside Lua scripts included.
	RedisCommandsPerDeploy float64 `json:"redis_commands_per_deploy"`
	// FleetRedisCommandsPerDeploy estimates the fleet's own share (API,
	// conductors): the pests' commands are counted as they are sent and
	// weighted by the server-side commands per pest command measured with
	// the pests alone just before the deploys.
	FleetRedisCommandsPerDeploy float64 `json:"fleet_redis_commands_per_deploy"`
	// PestGrabs is how often pests took a lock during the deploy phase.
	PestGrabs int64 `json:"pest_grabs"`
	// Pests, PestHoldms, PestGapms are the pest load.
	Pests      int     `json:"pests"`
	PestHoldms float64 `json:"pest_hold_ms"`
	PestGapms  float64 `json:"pest_gap_ms"`
	// Seconds is the wall time of the deploy phase.
	Seconds float64 `json:"seconds"`
	// Deploys are the active nodes' deploy times in milliseconds, sorted
	// (for the chart).
	Deploys []float64 `json:"-"`
	Scale
}

// Run runs every strategy in turn and calls done with each result as soon
// as it is measured.
func Run(ctx context.Context, cfg Config, done func(Result)) ([]Result, error) {
	cfg.defaults()
	base := cfg.DataDir
	if base == "" {
		dir, err := os.MkdirTemp("", "ironfleet-bench-fleet-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		base = dir
	}
	var out []Result
	for _, s := range cfg.Strategies {
		dir := filepath.Join(base, string(s))
		r, err := runOne(ctx, cfg, s, dir)
		_ = os.RemoveAll(dir)
		if err != nil {
			return out, fmt.Errorf("fleetbench: %s: %w", s, err)
		}
		out = append(out, r)
		if done != nil {
			done(r)
		}
	}
	return out, nil
}

// patientRetryWait bounds patient-retry's retries: the conductor's default
// ClaimWait, as before the strategies moved out of the conductor.
const patientRetryWait = 2 * time.Minute

func runOne(ctx context.Context, cfg Config, s Strategy, dir string) (Result, error) {
	var raced atomic.Int64
	r := Result{Strategy: string(s), Nodes: cfg.Nodes, Pests: cfg.Pests, PestHoldms: ms(cfg.PestHold), PestGapms: ms(cfg.PestGap)}
	fds := sampleFDs(200 * time.Millisecond)
	defer fds.end()
	d, err := fleet.StartDev(ctx, fleet.DevConfig{
		DataDir: dir, APIAddr: "127.0.0.1:0", Nodes: cfg.Nodes, Conductors: cfg.Conductors,
		Provide: true, ManualClean: true, EnrollWorkers: 32, ImageSize: cfg.ImageSize,
		HeartbeatTimeout: cfg.HeartbeatTimeout, RedisServer: cfg.RedisServer, SyncInterval: max(cfg.SyncInterval, 0),
		LockAttempts: cfg.LockAttempts, LockInterval: cfg.LockInterval,
		// Every node deploys at once: the benchmark measures the handoff,
		// not the group's admission limits.
		Conductor: conductor.Config{MaxDeploys: cfg.Nodes, MaxCleans: cfg.Nodes},
		Handoff:   s.handoff(&raced, patientRetryWait),
		Logger:    cfg.Logger,
	})
	if err != nil {
		return r, err
	}
	defer d.Stop() //nolint:contextcheck // Stop bounds its own shutdown and must run after ctx ends too
	c := newClient(d.APIURL())
	// Enrolling and providing take longer than the deploys' timeout only
	// for the largest fleets.
	nodes, err := c.waitAllIn(ctx, cfg.Nodes, "available", max(5*time.Minute, cfg.Timeout))
	if err != nil {
		return r, fmt.Errorf("providing the nodes: %w", err)
	}

	rc, err := fleet.NewRedis(ctx, d.RedisURL())
	if err != nil {
		return r, err
	}
	defer rc.Close()
	// The pests' own client, counting the commands it sends.
	prc, err := fleet.NewRedis(ctx, d.RedisURL())
	if err != nil {
		return r, err
	}
	defer prc.Close()
	sent := &counter{}
	prc.AddHook(sent)
	pestCtx, stopPests := context.WithCancel(ctx)
	pests, err := startPests(pestCtx, prc, nodes, cfg)
	if err != nil {
		stopPests()
		return r, err
	}
	defer func() { stopPests(); pests.wait() }()

	// Calibrate: with only the pests at work, how many commands Redis
	// counts per command they send (their scripts run several).
	perPestCmd := 0.0
	if cfg.Pests > 0 {
		if wait.Sleep(ctx, 500*time.Millisecond) != nil { // let the pests spread out
			return r, ctx.Err()
		}
		c0, err := snapshot(ctx, d, rc)
		if err != nil {
			return r, err
		}
		s0 := sent.load()
		if wait.Sleep(ctx, 2*time.Second) != nil {
			return r, ctx.Err()
		}
		c1, err := snapshot(ctx, d, rc)
		if err != nil {
			return r, err
		}
		if n := sent.load() - s0; n > 0 {
			perPestCmd = (c1.commands - c0.commands - 1) / float64(n) // minus our INFO
		}
	}

	before, err := snapshot(ctx, d, rc)
	if err != nil {
		return r, err
	}
	grabs0, sent0 := pests.grabs(), sent.load()
	start := time.Now()
	gaveUp := func() int {
		s, err := snapshot(ctx, d, nil)
		if err != nil {
			return 0
		}
		return int(s.gaveUp - before.gaveUp)
	}
	replaced := replaceMidRun(ctx, d, cfg.ReplaceConductorAfter, &r.Scale)
	res := deployAll(ctx, c, nodes, cfg.Timeout, gaveUp)
	r.Seconds = time.Since(start).Seconds()
	r.MaxFDs = fds.end()
	if err := replaced(); err != nil {
		return r, err
	}
	r.PestGrabs = pests.grabs() - grabs0
	pestCmds := float64(sent.load()-sent0) * perPestCmd
	after, err := snapshot(ctx, d, rc)
	if err != nil {
		return r, err
	}

	r.StuckIn = map[string]int{}
	for _, n := range res.nodes {
		if n.active {
			r.Active++
			r.Deploys = append(r.Deploys, ms(n.deploy))
		} else {
			r.Stuck++
			r.StuckIn[n.state]++
		}
	}
	if len(r.StuckIn) == 0 {
		r.StuckIn = nil
	}
	slices.Sort(r.Deploys)
	r.DeployP50ms = quantile(r.Deploys, 0.50)
	r.DeployP99ms = quantile(r.Deploys, 0.99)
	if len(r.Deploys) > 0 {
		r.DeployMaxms = r.Deploys[len(r.Deploys)-1]
	}
	r.Conflicts = res.conflicts
	r.RacedHandoffs = int(raced.Load())
	r.GaveUp = int(after.gaveUp - before.gaveUp)
	r.LockWaitP99ms = 1000 * histQuantile(before.wait, after.wait, 0.99)
	r.RedisCommandsPerDeploy = (after.commands - before.commands) / float64(cfg.Nodes)
	r.FleetRedisCommandsPerDeploy = max(after.commands-before.commands-pestCmds, 0) / float64(cfg.Nodes)
	if r.Seconds > 0 {
		r.NodesPerSecond = float64(r.Active) / r.Seconds
	}
	if err := measureMemory(ctx, d, rc, cfg.Nodes, &r.Scale); err != nil {
		return r, fmt.Errorf("measuring memory: %w", err)
	}
	return r, res.err
}

// pests take every node's lock the way a serial console and heartbeats
// do: standard mode, one attempt, hold, pause, again.
type pestSet struct {
	wg sync.WaitGroup
	mu sync.Mutex
	n  int64
	lk *lock.Locker
}

func startPests(ctx context.Context, rc *redis.Client, nodes []node, cfg Config) (*pestSet, error) {
	// One Locker for every pest: one process's pub/sub and pool, as a
	// console proxy would have. No Registerer: the lock metrics are the
	// fleet's own.
	lk, err := lock.New(ctx, rc, lock.Config{Holder: "pest"})
	if err != nil {
		return nil, err
	}
	p := &pestSet{lk: lk}
	for i, n := range nodes {
		for j := range cfg.Pests {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(j))) //nolint:gosec // jitter, not secrets
			p.wg.Go(func() { p.run(ctx, n.UUID, cfg, rng) })
		}
	}
	return p, nil
}

func (p *pestSet) run(ctx context.Context, resource string, cfg Config, rng *rand.Rand) {
	jitter := func(d time.Duration) time.Duration { return d/2 + time.Duration(rng.Int64N(int64(d)+1)) }
	// Start spread over one cycle, so that pests do not move in step.
	if wait.Sleep(ctx, time.Duration(rng.Int64N(int64(cfg.PestHold+cfg.PestGap)))) != nil {
		return
	}
	for {
		l, err := p.lk.Acquire(ctx, resource, &lock.Options{Attempts: 1, Purpose: "console"})
		if err == nil {
			p.mu.Lock()
			p.n++
			p.mu.Unlock()
			held := wait.Sleep(ctx, cfg.PestHold) == nil
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = l.Release(rctx)
			cancel()
			if !held {
				return
			}
		}
		if wait.Sleep(ctx, jitter(cfg.PestGap)) != nil {
			return
		}
	}
}

func (p *pestSet) grabs() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *pestSet) wait() {
	p.wg.Wait()
	_ = p.lk.Close()
}

type deployed struct {
	accepted time.Time
	deploy   time.Duration
	active   bool
	state    string
}

type deployResult struct {
	nodes     map[string]*deployed
	conflicts int
	err       error
}

// deployAll asks every node to go active at once, as users would (retrying
// on 409 NodeLocked), and watches the node list until every node is active
// or the timeout ends — or until every node that is not active has had its
// continuation give up (gaveUp counts them): nothing moves those nodes again
// before the conductors' recovery (10 minutes), so they are stuck already.
func deployAll(ctx context.Context, c *client, nodes []node, timeout time.Duration, gaveUp func() int) deployResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := deployResult{nodes: make(map[string]*deployed, len(nodes))}
	var mu sync.Mutex
	for _, n := range nodes {
		res.nodes[n.UUID] = &deployed{state: n.State}
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(nodes))
	// As many requests in flight as the client has connections: the
	// others wait here, not inside the HTTP client, whose timeout would
	// count the wait for a connection.
	inflight := make(chan struct{}, clientConns)
	for _, n := range nodes {
		wg.Go(func() {
			select {
			case inflight <- struct{}{}:
			case <-ctx.Done():
				return
			}
			conflicts, err := c.SetProvisionState(ctx, n.UUID, "active")
			<-inflight
			mu.Lock()
			defer mu.Unlock()
			res.conflicts += conflicts
			if err != nil {
				if ctx.Err() == nil {
					errc <- fmt.Errorf("deploy %s: %w", n.Name, err)
				}
				return
			}
			res.nodes[n.UUID].accepted = time.Now()
		})
	}
	defer wg.Wait()
	for {
		list, err := c.list(ctx)
		now := time.Now()
		if err == nil {
			mu.Lock()
			left := 0
			for _, n := range list {
				d := res.nodes[n.UUID]
				if d == nil || d.active {
					continue
				}
				d.state = n.State
				if n.State == "active" && !d.accepted.IsZero() {
					d.active, d.deploy = true, now.Sub(d.accepted)
					continue
				}
				left++
			}
			mu.Unlock()
			if left == 0 || left <= gaveUp() {
				return res
			}
		}
		select {
		case err := <-errc:
			res.err = err
			return res
		case <-ctx.Done():
			return res
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type metricsSnap struct {
	gaveUp, commands float64
	wait             map[float64]float64 // upper bound → cumulative count
}

func snapshot(ctx context.Context, d *fleet.Dev, rc *redis.Client) (metricsSnap, error) {
	s := metricsSnap{wait: map[float64]float64{}}
	mfs, err := d.Registry.Gather()
	if err != nil {
		return s, err
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "ironfleet_conductor_tasks_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == "gave_up" {
						s.gaveUp += m.GetCounter().GetValue()
					}
				}
			case "ironfleet_lock_wait_seconds":
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					s.wait[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
				s.wait[inf] += float64(h.GetSampleCount())
			}
		}
	}
	if rc == nil {
		return s, nil
	}
	info, err := rc.Info(ctx, "stats").Result()
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			s.commands, _ = strconv.ParseFloat(v, 64)
		}
	}
	return s, nil
}

var inf = float64(1 << 62)

// histQuantile estimates quantile q of the observations made between two
// cumulative bucket snapshots, interpolating linearly inside the bucket
// (as Prometheus's histogram_quantile does); past the last finite bucket it
// answers that bucket's bound.
func histQuantile(before, after map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	total := after[inf] - before[inf]
	if total <= 0 {
		return 0
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		count := after[b] - before[b]
		if count >= rank {
			if b == inf {
				return prevBound
			}
			if count == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(count-prevCount)
		}
		prevBound, prevCount = b, count
	}
	return prevBound
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.5)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// clientConns bounds the benchmark client's connections to the API.
const clientConns = 64

// client speaks the API as the baremetal CLI does.
type client struct{ *apiclient.Client }

type node struct {
	UUID  string `json:"uuid"`
	Name  string `json:"name"`
	State string `json:"provision_state"`
}

// clientTimeout bounds one request of the bench's clients.
const clientTimeout = 2 * time.Minute

func newClient(base string) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Every node's deploy is asked at once; they queue for a bounded pool
	// rather than open one connection (two descriptors, both ends in this
	// process) each.
	tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = clientConns, clientConns
	// A request waits for a pooled connection within its timeout, and an
	// action whose writes go unanswered in an overloaded process is
	// answered only once the dispatch knows what happened (internal/
	// dispatch settles each write for up to 30 s): give it room, rather
	// than give up on a request that is still being done.
	return &client{&apiclient.Client{Base: base, HTTP: &http.Client{Transport: tr, Timeout: clientTimeout}, LockedRetry: 100 * time.Millisecond}}
}

// list returns every node, following the pages.
func (c *client) list(ctx context.Context) ([]node, error) {
	return apiclient.ListNodes[node](ctx, c.Client, "/v1/nodes?limit=1000")
}

// waitAllIn waits until n nodes exist, all in state.
func (c *client) waitAllIn(ctx context.Context, n int, state string, timeout time.Duration) ([]node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		list, err := c.list(ctx)
		if err == nil && len(list) == n {
			ready := 0
			for _, nd := range list {
				if nd.State == state {
					ready++
				}
			}
			if ready == n {
				return list, nil
			}
		}
		if wait.Sleep(ctx, 250*time.Millisecond) != nil {
			if err != nil {
				return nil, fmt.Errorf("waiting for %d nodes %s: %w (last error: %w)", n, state, ctx.Err(), err)
			}
			return nil, fmt.Errorf("waiting for %d nodes %s: %w", n, state, ctx.Err())
		}
	}
}

// counter is a go-redis hook counting the commands a client sends.
type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) add(n int) {
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
}

func (c *counter) load() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(1)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(len(cmds))
		return next(ctx, cmds)
	}
}
