// Package lockbench measures ironfleet's lock side by side with the
// alternatives, in one run against one Redis: bsm/redislock polling at 1 s
// (Ironic's interval) and 10 ms, and go-redsync. `ironfleet bench lock` and
// the Go benchmarks in this package run it.
//
// Workloads, each run once per implementation:
//   - rtt: Redis PING round trip, the floor a direct handoff cannot beat.
//   - relay: the cross-process wake-up alone, measured once per run: as
//     many processes as the hot key's (each its own client and
//     subscription) pass one message round a ring by PUBLISH, each sending
//     on as soon as it reads; the time per hop is what a fair grant's
//     wake-up costs on this machine before any lock work (FairBound).
//   - handoff: one holder, one waiter that starts waiting 2–52 ms before the
//     release; latency from the release call to the waiter holding the lock.
//   - hot key: 16 processes, each warmed up on a key of its own (connections
//     dialed, scripts loaded), acquire and release one key for a fixed time:
//     grants per second, Jain's fairness index over grants per process, FIFO
//     inversions (a grant to a process while another had been waiting more
//     than 5 ms longer), Redis commands per grant (INFO counts the commands
//     run inside scripts too), and the CPU per grant of redis-server and of
//     this process (where all the simulated processes run).
//   - starvation (the seed's race): a holder passes the lock to the next
//     step of a deploy while 8 pests re-grab it for short holds in a tight
//     loop; lost handoffs (the next step gave up after Ironic's 3 attempts)
//     and the longest time the next step waited.
package lockbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config, applied where a field is zero.
const (
	DefaultHandoffSamples = 300
	DefaultHandoffBudget  = 6 * time.Second
	DefaultHotKeyProcs    = 16
	DefaultHotKeyDuration = 3 * time.Second
	DefaultPests          = 8
	DefaultPestHold       = 2 * time.Millisecond
	DefaultRounds         = 10
	DefaultFIFOTolerance  = 5 * time.Millisecond
)

// Config sizes the workloads. The zero value is the default run, which
// finishes well within two minutes on a 2-core machine; each zero field
// means its Default… constant.
type Config struct {
	// HandoffSamples caps the handoff samples per implementation (default
	// 300); HandoffBudget caps the time spent on them (default 6s).
	HandoffSamples int
	HandoffBudget  time.Duration
	// HotKeyProcs and HotKeyDuration shape the hot-key workload (16, 3s).
	HotKeyProcs    int
	HotKeyDuration time.Duration
	// Pests, PestHold and Rounds shape the starvation workload (8, 2ms, 10).
	Pests    int
	PestHold time.Duration
	Rounds   int
	// FIFOTolerance is the wait difference below which two waiters are
	// considered to have arrived together (default 5ms): a process notes
	// when it starts waiting before its request reaches Redis, and on a
	// loaded 2-core machine that gap alone can reach a few milliseconds.
	FIFOTolerance time.Duration
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.HandoffSamples, DefaultHandoffSamples)
	defd(&c.HandoffBudget, DefaultHandoffBudget)
	def(&c.HotKeyProcs, DefaultHotKeyProcs)
	defd(&c.HotKeyDuration, DefaultHotKeyDuration)
	def(&c.Pests, DefaultPests)
	defd(&c.PestHold, DefaultPestHold)
	def(&c.Rounds, DefaultRounds)
	defd(&c.FIFOTolerance, DefaultFIFOTolerance)
}

// Result is one implementation's numbers; its JSON is one line of
// `ironfleet bench lock --json`.
type Result struct {
	Impl string `json:"impl"`
	// RTTMicros is the PING round trip measured the way handoffs are: after
	// the same 2–52 ms idle gaps (the machine's wake-up costs included).
	// RTTHotMicros is PING back to back.
	RTTMicros    float64 `json:"rtt_us"`
	RTTHotMicros float64 `json:"rtt_hot_us"`
	// RelayHopMicros is one hop of the relay: a PUBLISH read by another
	// of the hot key's processes, which publishes on (the run's, the same
	// for every implementation).
	RelayHopMicros        float64 `json:"relay_hop_us"`
	HandoffSamples        int     `json:"handoff_samples"`
	HandoffP50Micros      float64 `json:"handoff_p50_us"`
	HandoffP99Micros      float64 `json:"handoff_p99_us"`
	HandoffMaxMicros      float64 `json:"handoff_max_us"`
	HotKeyGrantsPerSecond float64 `json:"hot_key_grants_per_s"`
	RedisCommandsPerGrant float64 `json:"redis_cmds_per_grant"`
	// RedisCPUMicrosPerGrant is the CPU redis-server used (user + system,
	// INFO cpu) over the hot-key run, per grant; ClientCPUMicrosPerGrant
	// the same for this process, where the simulated processes all run.
	RedisCPUMicrosPerGrant  float64 `json:"redis_cpu_us_per_grant"`
	ClientCPUMicrosPerGrant float64 `json:"client_cpu_us_per_grant"`
	JainIndex               float64 `json:"jain_index"`
	FIFOInversions          int     `json:"fifo_inversions"`
	StarvationRounds        int     `json:"starvation_rounds"`
	StarvationLostHandoffs  int     `json:"starvation_lost_handoffs"`
	StarvationMaxWaitMS     float64 `json:"starvation_max_wait_ms"`
}

// Run measures every implementation in turn, calling done after each.
func Run(ctx context.Context, admin *redis.Client, impls []Impl, cfg Config, done func(Result)) ([]Result, error) {
	cfg.defaults()
	hot, err := pingRTT(ctx, admin, 1000, false)
	if err != nil {
		return nil, fmt.Errorf("lockbench: ping: %w", err)
	}
	cold, err := pingRTT(ctx, admin, 100, true)
	if err != nil {
		return nil, fmt.Errorf("lockbench: ping: %w", err)
	}
	hop, err := relay(ctx, admin.Options(), cfg.HotKeyProcs, relayDuration)
	if err != nil {
		return nil, fmt.Errorf("lockbench: relay: %w", err)
	}
	var out []Result
	for _, impl := range impls {
		r := Result{Impl: impl.Name(), RTTMicros: micros(cold), RTTHotMicros: micros(hot), RelayHopMicros: micros(hop)}
		if err := handoff(ctx, impl, cfg, &r); err != nil {
			return out, fmt.Errorf("lockbench: %s: handoff: %w", impl.Name(), err)
		}
		if err := hotKey(ctx, admin, impl, cfg, &r); err != nil {
			return out, fmt.Errorf("lockbench: %s: hot key: %w", impl.Name(), err)
		}
		if err := starvation(ctx, impl, cfg, &r); err != nil {
			return out, fmt.Errorf("lockbench: %s: starvation: %w", impl.Name(), err)
		}
		out = append(out, r)
		if done != nil {
			done(r)
		}
	}
	return out, nil
}

// pingRTT is the median PING round trip over n pings, back to back or each
// after an idle gap like the handoff workload's.
func pingRTT(ctx context.Context, c *redis.Client, n int, idle bool) (time.Duration, error) {
	rng := rand.New(rand.NewPCG(3, 4)) //nolint:gosec // workload jitter, not secrets
	var d []time.Duration
	for range n {
		if idle {
			time.Sleep(idleGap(rng))
		}
		t := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, err
		}
		d = append(d, time.Since(t))
	}
	return percentile(d, 0.5), nil
}

// relayDuration is how long the relay runs.
const relayDuration = time.Second

// relay passes one message round a ring of n processes, each with its own
// client (opts) and its own subscription, for about d, each publishing to
// the next as soon as it reads; it returns the mean time per hop. It is a
// fair grant's chain without the lock: a PUBLISH that wakes another
// process, which sends a command at once.
func relay(ctx context.Context, opts *redis.Options, n int, d time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	channel := func(i int) string { return "lockbench:relay:" + strconv.Itoa(i%n) }
	clients := make([]*redis.Client, n)
	subs := make([]*redis.PubSub, n)
	defer func() {
		for i := range n {
			if subs[i] != nil {
				_ = subs[i].Close()
			}
			if clients[i] != nil {
				_ = clients[i].Close()
			}
		}
	}()
	for i := range n {
		o := *opts
		clients[i] = redis.NewClient(&o)
		subs[i] = clients[i].Subscribe(ctx, channel(i))
		if _, err := subs[i].Receive(ctx); err != nil { // the subscription's confirmation
			return 0, err
		}
	}
	var hops atomic.Int64
	end := time.Now().Add(d)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for {
				_, err := subs[i].ReceiveMessage(ctx)
				if err != nil {
					errs <- err
					return
				}
				if !time.Now().Before(end) {
					errs <- nil
					return
				}
				hops.Add(1)
				if err := clients[i].Publish(ctx, channel(i+1), "hop").Err(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Closing the subscriptions ends every process still reading.
	stop := func() {
		cancel()
		for _, sub := range subs {
			_ = sub.Close()
		}
		wg.Wait()
	}
	start := time.Now()
	if err := clients[0].Publish(ctx, channel(0), "hop").Err(); err != nil {
		stop()
		return 0, err
	}
	err := <-errs // from the first process to see the end
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return 0, err
	}
	if hops.Load() == 0 {
		return 0, errors.New("no message went round the relay")
	}
	return elapsed / time.Duration(hops.Load()), nil
}

func processes(ctx context.Context, impl Impl, n int) ([]Process, func(), error) {
	var ps []Process
	closeAll := func() {
		for _, p := range ps {
			_ = p.Close()
		}
	}
	for range n {
		p, err := impl.Process(ctx)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ps = append(ps, p)
	}
	return ps, closeAll, nil
}

func key(impl Impl, workload string) string {
	return "lockbench:" + strings.ReplaceAll(impl.Name(), " ", "") + ":" + workload
}

func handoff(ctx context.Context, impl Impl, cfg Config, r *Result) error {
	ps, closeAll, err := processes(ctx, impl, 2)
	if err != nil {
		return err
	}
	defer closeAll()
	holder, waiter := ps[0], ps[1]
	k := key(impl, "handoff")
	rng := rand.New(rand.NewPCG(1, 2)) //nolint:gosec // workload jitter, not secrets
	var samples []time.Duration
	deadline := time.Now().Add(cfg.HandoffBudget)
	for len(samples) < cfg.HandoffSamples && time.Now().Before(deadline) {
		h, err := holder.Wait(ctx, k, "holder")
		if err != nil {
			return err
		}
		got := make(chan error, 1)
		var at time.Time
		var wh Held
		go func() {
			var err error
			wh, err = waiter.Wait(ctx, k, "waiter")
			at = time.Now()
			got <- err
		}()
		time.Sleep(idleGap(rng))
		start := time.Now()
		if err := h.Release(ctx); err != nil {
			return err
		}
		if err := <-got; err != nil {
			return err
		}
		samples = append(samples, at.Sub(start))
		if err := wh.Release(ctx); err != nil {
			return err
		}
	}
	r.HandoffSamples = len(samples)
	r.HandoffP50Micros = micros(percentile(samples, 0.5))
	r.HandoffP99Micros = micros(percentile(samples, 0.99))
	r.HandoffMaxMicros = micros(percentile(samples, 1))
	return nil
}

func hotKey(ctx context.Context, admin *redis.Client, impl Impl, cfg Config, r *Result) error {
	ps, closeAll, err := processes(ctx, impl, cfg.HotKeyProcs)
	if err != nil {
		return err
	}
	defer closeAll()
	k := key(impl, "hot")
	// Each process takes and releases a key of its own once before the
	// clock starts, so that dialing its connections and loading scripts
	// are not counted as waiting (they showed as FIFO inversions among the
	// first grants).
	for i, p := range ps {
		h, err := p.Wait(ctx, key(impl, "warm-"+strconv.Itoa(i)), "warm-up")
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := h.Release(ctx); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	before, err := commandsProcessed(ctx, admin)
	if err != nil {
		return err
	}
	redisCPU0, err := redisCPU(ctx, admin)
	if err != nil {
		return err
	}
	clientCPU0 := processCPU()
	var (
		mu         sync.Mutex
		waitingAt  = make(map[int]time.Time) // process -> when it started waiting
		grants     = make([]int, len(ps))
		inversions int
		total      atomic.Int64
		firstErr   error
	)
	wctx, cancel := context.WithTimeout(ctx, cfg.HotKeyDuration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			for wctx.Err() == nil {
				req := time.Now()
				mu.Lock()
				waitingAt[i] = req
				mu.Unlock()
				h, err := p.Wait(wctx, k, "proc-"+strconv.Itoa(i))
				mu.Lock()
				delete(waitingAt, i)
				if err != nil {
					if wctx.Err() == nil && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				grants[i]++
				for _, other := range waitingAt {
					if other.Add(cfg.FIFOTolerance).Before(req) {
						inversions++
						break
					}
				}
				mu.Unlock()
				total.Add(1)
				if err := h.Release(context.WithoutCancel(wctx)); err != nil && firstErr == nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	clientCPU := processCPU() - clientCPU0
	after, err := commandsProcessed(ctx, admin)
	if err != nil {
		return err
	}
	redisCPU1, err := redisCPU(ctx, admin)
	if err != nil {
		return err
	}
	n := total.Load()
	r.HotKeyGrantsPerSecond = float64(n) / elapsed.Seconds()
	if n > 0 {
		r.RedisCommandsPerGrant = float64(after-before) / float64(n)
		r.RedisCPUMicrosPerGrant = micros(redisCPU1-redisCPU0) / float64(n)
		r.ClientCPUMicrosPerGrant = micros(clientCPU) / float64(n)
	}
	r.JainIndex = jain(grants)
	r.FIFOInversions = inversions
	return nil
}

func starvation(ctx context.Context, impl Impl, cfg Config, r *Result) error {
	ps, closeAll, err := processes(ctx, impl, cfg.Pests+2)
	if err != nil {
		return err
	}
	defer closeAll()
	holder, next, pests := ps[0], ps[1], ps[2:]
	k := key(impl, "starvation")
	var maxWait time.Duration
	for range cfg.Rounds {
		// The step before holds the node (nobody contends yet).
		h, err := holder.Wait(ctx, k, "deploy")
		if err != nil {
			return err
		}
		// A console and heartbeats start grabbing the lock.
		pctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, p := range pests {
			wg.Go(func() {
				for pctx.Err() == nil {
					ph, err := p.Try(pctx, k)
					if err != nil {
						continue
					}
					time.Sleep(cfg.PestHold)
					_ = ph.Release(context.WithoutCancel(pctx))
				}
			})
		}
		time.Sleep(5 * time.Millisecond)
		start := time.Now()
		claim, err := holder.Handoff(ctx, h)
		if err != nil {
			stop()
			wg.Wait()
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		nh, err := claim(cctx, next, k)
		cancel()
		waited := time.Since(start)
		maxWait = max(maxWait, waited)
		stop()
		wg.Wait()
		r.StarvationRounds++
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.StarvationLostHandoffs++
			continue
		}
		if err := nh.Release(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	r.StarvationMaxWaitMS = float64(maxWait.Microseconds()) / 1000
	return nil
}

// idleGap is how long a handoff's waiter waits before the release: 2–52 ms.
func idleGap(rng *rand.Rand) time.Duration {
	return 2*time.Millisecond + time.Duration(rng.IntN(50))*time.Millisecond
}

func commandsProcessed(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("no total_commands_processed in INFO stats")
}

// redisCPU is the CPU time redis-server has used, user and system (INFO cpu).
func redisCPU(ctx context.Context, c *redis.Client) (time.Duration, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total float64
	found := 0
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "used_cpu_user" && k != "used_cpu_sys") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO cpu %s: %w", k, err)
		}
		total += f
		found++
	}
	if found != 2 {
		return 0, errors.New("no used_cpu_user and used_cpu_sys in INFO cpu")
	}
	return time.Duration(total * float64(time.Second)), nil
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// jain is Jain's fairness index: 1 when every process got the same share.
func jain(x []int) float64 {
	var sum, sq float64
	for _, v := range x {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(x)) * sq)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s)-1) + 0.5)
	return s[min(i, len(s)-1)]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
