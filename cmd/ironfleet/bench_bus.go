package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func newBenchBusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bus",
		Short: "Task publish → consume → ack throughput and latency: our bus vs raw JetStream",
		Long: `bus measures, in one run and on the same server, tasks going through ironfleet's
bus (Bus.Publish with the task ID as message ID, the Consume loop with its
decode, InProgress and confirmed ack) and the same number of same-sized
messages through raw nats.go JetStream (Publish, a pull consumer's Messages,
Ack) on an identically configured work-queue stream.

Each round has two phases. Throughput: --publishers goroutines publish --tasks
tasks as fast as they are stored, and the clock runs from the first publish
until the stream is empty (every task acked). Latency: --latency-tasks tasks are
published one at a time, each after the previous reached its handler; p50/p99
are from just before a task's publish until its handler starts. (The "loaded"
quantiles are the same measure during the throughput phase: mostly backlog.)
Rounds alternate the two so drift on a shared machine hits both; the table
shows the median round of each. By default it starts its own embedded NATS
server (sync on every write, as ironfleet runs it) in a temporary directory.`,
		Args: cobra.NoArgs,
		RunE: runBenchBus,
	}
	f := cmd.Flags()
	f.String("nats", "", "NATS URL to benchmark against (default: an embedded server)")
	f.Int("tasks", 5000, "tasks per round and implementation in the throughput phase")
	f.Int("latency-tasks", 500, "tasks per round and implementation in the latency phase, one in flight at a time")
	f.Int("publishers", 8, "concurrent publishers")
	f.Int("concurrency", 16, "handlers running at once, on both sides; each pulls batches of twice this")
	f.Int("rounds", 5, "rounds per implementation, alternating")
	f.Duration("max-time", 90*time.Second, "start no new round after this long (at least one round always runs)")
	f.Bool("json", false, "print one JSON object per implementation and line")
	f.Duration("sync-interval", 0, "embedded server's fsync interval (0: sync on every write)")
	f.String("cpuprofile", "", "write a CPU profile of the whole run (client and embedded server) to this file")
	return cmd
}

type busResult struct {
	Impl         string  `json:"impl"`
	Tasks        int     `json:"tasks"`
	LatencyTasks int     `json:"latency_tasks"`
	Publishers   int     `json:"publishers"`
	Concurrency  int     `json:"concurrency"`
	Rounds       int     `json:"rounds"`
	TasksPerS    float64 `json:"tasks_per_s"`
	// P50us and P99us: one task in flight (the latency phase).
	P50us float64 `json:"p50_us"`
	P99us float64 `json:"p99_us"`
	// LoadedP50us and LoadedP99us: during the throughput phase, where a
	// backlog builds when publishers outrun the consumer.
	LoadedP50us float64 `json:"loaded_p50_us"`
	LoadedP99us float64 `json:"loaded_p99_us"`
	Seconds     float64 `json:"seconds"`
	Bytes       int     `json:"msg_bytes"`
	// RatioToRaw (ours only): median over rounds of ours/raw throughput.
	RatioToRaw float64 `json:"ratio_to_raw,omitempty"`
}

type benchParams struct {
	tasks, latencyTasks, publishers, concurrency int
}

func runBenchBus(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	url, _ := f.GetString("nats")
	tasks, _ := f.GetInt("tasks")
	latTasks, _ := f.GetInt("latency-tasks")
	pubs, _ := f.GetInt("publishers")
	conc, _ := f.GetInt("concurrency")
	rounds, _ := f.GetInt("rounds")
	asJSON, _ := f.GetBool("json")
	syncInterval, _ := f.GetDuration("sync-interval")
	if tasks < 1 || latTasks < 1 || pubs < 1 || conc < 1 || rounds < 1 {
		return errors.New("--tasks, --latency-tasks, --publishers, --concurrency and --rounds must be at least 1")
	}
	ctx := cmd.Context()
	if path, _ := f.GetString("cpuprofile"); path != "" {
		pf, err := os.Create(path) //nolint:gosec // an operator-given path
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if url == "" {
		dir, err := os.MkdirTemp("", "ironfleet-bench-bus-")
		if err != nil {
			return fmt.Errorf("temp dir: %w", err)
		}
		defer os.RemoveAll(dir)
		ns, err := transport.StartEmbedded(ctx, transport.EmbeddedConfig{StoreDir: dir, ServerName: "bench", SyncInterval: syncInterval})
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		url = ns.URL()
	}
	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{url}, Name: "ironfleet-bench-bus"})
	if err != nil {
		return err
	}
	defer nc.Close()
	p := benchParams{tasks: tasks, latencyTasks: latTasks, publishers: pubs, concurrency: conc}
	type run func(context.Context, *nats.Conn, benchParams) (roundResult, error)
	impls := []struct {
		name string
		run  run
	}{{"ironfleet", benchOurs}, {"jetstream-raw", benchRaw}}
	maxTime, _ := f.GetDuration("max-time")
	began := time.Now()
	all := map[string][]roundResult{}
	for r := range rounds {
		if r > 0 && time.Since(began) > maxTime {
			rounds = r
			break
		}
		for i := range impls {
			im := impls[(i+r)%len(impls)] // alternate who goes first
			res, err := im.run(ctx, nc, p)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", im.name, r+1, err)
			}
			all[im.name] = append(all[im.name], res)
		}
	}
	// The ratio is the median of each round's ours/raw: the two ran back to
	// back, so drift on a shared machine mostly cancels out.
	var ratios []float64
	for r := range all["ironfleet"] {
		if raw := all["jetstream-raw"][r].perS; raw > 0 {
			ratios = append(ratios, all["ironfleet"][r].perS/raw)
		}
	}
	slices.Sort(ratios)
	var results []busResult
	for _, im := range impls {
		rs := slices.Clone(all[im.name])
		slices.SortFunc(rs, func(a, b roundResult) int { return cmp.Compare(a.perS, b.perS) })
		med := rs[len(rs)/2]
		results = append(results, busResult{
			Impl: im.name, Tasks: tasks, LatencyTasks: latTasks, Publishers: pubs, Concurrency: conc, Rounds: rounds,
			TasksPerS: round1(med.perS), P50us: round1(med.p50), P99us: round1(med.p99),
			LoadedP50us: round1(med.loadedP50), LoadedP99us: round1(med.loadedP99),
			Seconds: round1(med.seconds), Bytes: med.bytes,
		})
	}
	if len(ratios) > 0 {
		results[0].RatioToRaw = math.Round(ratios[len(ratios)/2]*100) / 100
	}
	return printBusResults(cmd.OutOrStdout(), results, asJSON)
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

func printBusResults(w io.Writer, rs []busResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range rs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "impl\ttasks/s\tp50 µs\tp99 µs\tloaded p50 µs\tloaded p99 µs\tmsg bytes\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t\n", r.Impl, r.TasksPerS, r.P50us, r.P99us, r.LoadedP50us, r.LoadedP99us, r.Bytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rs) == 2 {
		_, err := fmt.Fprintf(w, "throughput ours/raw: %.2f (median of per-round ratios; %d tasks × %d rounds, %d publishers, concurrency %d)\n",
			rs[0].RatioToRaw, rs[0].Tasks, rs[0].Rounds, rs[0].Publishers, rs[0].Concurrency)
		return err
	}
	return nil
}

type roundResult struct {
	perS, p50, p99, loadedP50, loadedP99, seconds float64
	bytes                                         int
}

// latencies records, per task index, publish-start → handler-start.
type latencies struct {
	start  []atomic.Int64 // unix nanos just before publish
	lat    []atomic.Int64 // nanos; 0 until first delivered
	seen   atomic.Int64   // tasks delivered at least once
	notify chan struct{}  // a token after each first delivery
}

func newLatencies(n int) *latencies {
	return &latencies{start: make([]atomic.Int64, n), lat: make([]atomic.Int64, n), notify: make(chan struct{}, 1)}
}

// delivered records task i's first delivery.
func (l *latencies) delivered(i int) {
	if i < 0 || i >= len(l.lat) {
		return
	}
	if !l.lat[i].CompareAndSwap(0, max(time.Now().UnixNano()-l.start[i].Load(), 1)) {
		return // a redelivery
	}
	l.seen.Add(1)
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// waitSeen waits until k tasks were delivered.
func (l *latencies) waitSeen(ctx context.Context, k int) error {
	for l.seen.Load() < int64(k) {
		select {
		case <-l.notify:
		case <-ctx.Done():
			return fmt.Errorf("waiting for deliveries (%d of %d): %w", l.seen.Load(), k, ctx.Err())
		}
	}
	return nil
}

// quantiles returns p50 and p99 in µs of tasks [from, to).
func (l *latencies) quantiles(from, to int) (p50, p99 float64) {
	ls := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		ls = append(ls, l.lat[i].Load())
	}
	slices.Sort(ls)
	q := func(p float64) float64 { return float64(ls[int(p*float64(len(ls)-1))]) / 1e3 }
	return q(0.50), q(0.99)
}

// measure runs one round: the throughput phase publishes tasks [0, p.tasks)
// from p.publishers goroutines and ends when the stream is empty; the
// latency phase then publishes tasks [p.tasks, p.tasks+p.latencyTasks) one
// at a time, each after the previous was delivered.
func measure(ctx context.Context, p benchParams, lat *latencies, js jetstream.JetStream, stream string, bytes int, pub func(ctx context.Context, i int) error) (roundResult, error) {
	start := time.Now()
	if err := publishAll(ctx, p, lat, pub); err != nil {
		return roundResult{}, err
	}
	if err := lat.waitSeen(ctx, p.tasks); err != nil {
		return roundResult{}, err
	}
	if err := waitDrained(ctx, js, stream); err != nil {
		return roundResult{}, err
	}
	elapsed := time.Since(start)
	r := roundResult{perS: float64(p.tasks) / elapsed.Seconds(), seconds: elapsed.Seconds(), bytes: bytes}
	r.loadedP50, r.loadedP99 = lat.quantiles(0, p.tasks)
	for i := p.tasks; i < p.tasks+p.latencyTasks; i++ {
		lat.start[i].Store(time.Now().UnixNano())
		if err := pub(ctx, i); err != nil {
			return roundResult{}, err
		}
		if err := lat.waitSeen(ctx, i+1); err != nil {
			return roundResult{}, err
		}
	}
	r.p50, r.p99 = lat.quantiles(p.tasks, p.tasks+p.latencyTasks)
	return r, nil
}

// publishAll runs p.publishers goroutines publishing task indexes 0..p.tasks-1.
func publishAll(ctx context.Context, p benchParams, lat *latencies, pub func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range p.publishers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= p.tasks {
					return nil
				}
				lat.start[i].Store(time.Now().UnixNano())
				if err := pub(gctx, i); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// waitDrained waits until the work-queue stream holds no message: every task acked.
func waitDrained(ctx context.Context, js jetstream.JetStream, stream string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	for {
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs == 0 {
			return nil
		}
		if err := wait.Sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
}

var benchRunID atomic.Int64

func benchTask(run int64, i int) wire.Task {
	t := wire.NewTask(wire.OpPower, wire.Node{UUID: fmt.Sprintf("bench-node-%d", i%1000), ConductorGroup: "bench"},
		"bench", json.RawMessage(`{"target":"power on"}`))
	// A readable ID, unique per process, run and task, for the dedup window.
	t.ID = fmt.Sprintf("bench-%d-%d-%d", os.Getpid(), run, i)
	return t
}

func benchOurs(ctx context.Context, nc *nats.Conn, p benchParams) (roundResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	b, err := transport.NewBus(ctx, nc, transport.BusConfig{Groups: []string{"bench"}})
	if err != nil {
		return roundResult{}, err
	}
	run := benchRunID.Add(1)
	// Build the tasks before the clock starts, as the raw side builds its payloads.
	n := p.tasks + p.latencyTasks
	index := make(map[string]int, n)
	all := make([]wire.Task, n)
	for i := range n {
		all[i] = benchTask(run, i)
		index[all[i].ID] = i
	}
	lat := newLatencies(n)
	cctx, stop := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		consumed <- b.Consume(cctx, "bench", func(_ context.Context, t wire.Task, _ transport.Delivery) transport.Outcome {
			lat.delivered(index[t.ID])
			return transport.Done()
		}, transport.ConsumeConfig{Concurrency: p.concurrency, Conductor: "bench"})
	}()
	defer func() {
		stop()
		if err := <-consumed; err != nil {
			fmt.Fprintln(os.Stderr, "bench bus: consume:", err)
		}
	}()
	size, _ := transport.EncodeTask(benchTask(run, 0))
	return measure(ctx, p, lat, b.JetStream(), transport.TasksStream, len(size), func(ctx context.Context, i int) error {
		_, err := b.Publish(ctx, all[i])
		return err
	})
}

const rawStream = "BENCH_RAW"

func benchRaw(ctx context.Context, nc *nats.Conn, p benchParams) (roundResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return roundResult{}, err
	}
	// The same stream configuration as TASKS, minus what only we use.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{"bench.raw.>"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: transport.DefaultDuplicates,
	}); err != nil {
		return roundResult{}, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, rawStream, jetstream.ConsumerConfig{
		Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, AckWait: transport.DefaultAckWait,
		MaxDeliver: transport.DefaultMaxDeliver, MaxAckPending: transport.DefaultMaxAckPending,
	})
	if err != nil {
		return roundResult{}, err
	}
	// Same payload size as our envelope; the index rides in the first bytes.
	sample, _ := transport.EncodeTask(benchTask(benchRunID.Load(), 0))
	size := len(sample)
	n := p.tasks + p.latencyTasks
	lat := newLatencies(n)
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = make([]byte, size)
		binary.BigEndian.PutUint64(payloads[i], uint64(i)) //nolint:gosec // i ≥ 0
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * p.concurrency))
	if err != nil {
		return roundResult{}, err
	}
	// One pull loop; with --concurrency > 1 it hands messages to that many
	// workers, as a raw nats.go consumer with parallel handlers does.
	handle := func(msg jetstream.Msg) {
		lat.delivered(int(binary.BigEndian.Uint64(msg.Data()) & 0x7fffffff)) // an index < 2^31
		_ = msg.Ack()
	}
	work := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	nworkers := p.concurrency
	if nworkers == 1 {
		nworkers = 0 // the pull loop handles inline
	}
	for range nworkers {
		workers.Go(func() {
			for msg := range work {
				handle(msg)
			}
		})
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		defer func() { close(work); workers.Wait() }()
		for {
			msg, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrNoHeartbeat) {
					continue
				}
				return
			}
			if p.concurrency == 1 {
				handle(msg)
			} else {
				work <- msg
			}
		}
	}()
	defer func() { it.Stop(); <-consumed }()
	return measure(ctx, p, lat, js, rawStream, size, func(ctx context.Context, i int) error {
		_, err := js.Publish(ctx, "bench.raw.power", payloads[i])
		return err
	})
}
