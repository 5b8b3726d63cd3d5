package fleetbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/fleet"
)

// Scale is what a run measures of the fleet's size: throughput, the
// descriptors and memory the whole fleet in this process holds, and a
// conductor replaced mid-run. Memory is after the deploys, over the nodes.
type Scale struct {
	// NodesPerSecond is the active nodes over the deploy phase's wall time.
	NodesPerSecond float64 `json:"nodes_per_s"`
	// MaxFDs is the most file descriptors the process held at once, from
	// when the fleet started to the end of the deploys (sampled).
	MaxFDs int `json:"max_fds"`
	// RSSPeakMiB is the process's peak resident set (VmHWM); RSSPerNodeKiB
	// and HeapPerNodeKiB are the resident set and the Go heap in use after
	// the deploys, over the nodes.
	RSSPeakMiB     float64 `json:"rss_peak_mib"`
	RSSPerNodeKiB  float64 `json:"rss_per_node_kib"`
	HeapPerNodeKiB float64 `json:"heap_per_node_kib"`
	// RedisBytesPerNode is Redis's used_memory over the nodes;
	// NATSBytesPerNode is JetStream's stored bytes (every stream and
	// bucket of the account) over the nodes.
	RedisBytesPerNode float64 `json:"redis_bytes_per_node"`
	NATSBytesPerNode  float64 `json:"nats_bytes_per_node"`
	// ConductorReplacedAts is when, into the deploy phase, a conductor was
	// stopped and replaced (Config.ReplaceConductorAfter; 0: not replaced),
	// and ConductorStartupms how long its replacement took to start — its
	// own connections, an inventory cache loaded with every node, and its
	// registration.
	ConductorReplacedAts float64 `json:"conductor_replaced_at_s,omitempty"`
	ConductorStartupms   float64 `json:"conductor_startup_ms,omitempty"`
	// PowerSyncs and PowerSyncNodes are the longest last power sync of
	// any conductor by the end of the run and the nodes it read (0: no
	// sync ran: runs shorter than the power sync's period).
	PowerSyncs     float64 `json:"power_sync_s,omitempty"`
	PowerSyncNodes int     `json:"power_sync_nodes,omitempty"`
}

// fdSampler records the most file descriptors the process holds, read
// from /proc/self/fd every interval until stop.
type fdSampler struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
	mu   sync.Mutex
	max  int
}

// openFDs counts the process's open file descriptors (Linux); 0 where
// /proc is not there.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

func sampleFDs(every time.Duration) *fdSampler {
	s := &fdSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n := openFDs()
			s.mu.Lock()
			s.max = max(s.max, n)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// end stops the sampler (once) and returns the most descriptors it saw.
func (s *fdSampler) end() int {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// replaceMidRun stops and replaces conductor 0 after the given time into
// the deploys (never when after is 0), recording when and how long the
// replacement took to start. finish is called when the deploys end: a
// replacement not begun by then is not made; one under way is waited for.
func replaceMidRun(ctx context.Context, d *fleet.Dev, after time.Duration, sc *Scale) (finish func() error) {
	if after <= 0 {
		return func() error { return nil }
	}
	start := time.Now()
	ended := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		select {
		case <-time.After(after):
		case <-ended:
			errc <- nil
			return
		case <-ctx.Done():
			errc <- nil
			return
		}
		at := time.Since(start)
		startup, err := d.ReplaceConductor(ctx, 0)
		if err == nil {
			sc.ConductorReplacedAts, sc.ConductorStartupms = at.Seconds(), ms(startup)
		}
		errc <- err
	}()
	return func() error {
		close(ended)
		if err := <-errc; err != nil {
			return fmt.Errorf("replacing a conductor: %w", err)
		}
		return nil
	}
}

// measureMemory fills the memory figures of sc for nodes nodes.
func measureMemory(ctx context.Context, d *fleet.Dev, rc *redis.Client, nodes int, sc *Scale) error {
	per := float64(max(nodes, 1))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	sc.HeapPerNodeKiB = float64(ms.HeapInuse) / 1024 / per
	mfs, err := d.Registry.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if mf.GetName() != "ironfleet_conductor_power_sync_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			sc.PowerSyncs = max(sc.PowerSyncs, m.GetGauge().GetValue())
		}
	}
	for _, mf := range mfs {
		if mf.GetName() == "ironfleet_conductor_power_sync_nodes" {
			for _, m := range mf.GetMetric() {
				sc.PowerSyncNodes = max(sc.PowerSyncNodes, int(m.GetGauge().GetValue()))
			}
		}
	}
	st, err := procStatus()
	if err != nil {
		return err
	}
	sc.RSSPeakMiB = float64(st["VmHWM"]) / 1024
	sc.RSSPerNodeKiB = float64(st["VmRSS"]) / per
	info, err := rc.Info(ctx, "memory").Result()
	if err != nil {
		return err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			b, _ := strconv.ParseFloat(v, 64)
			sc.RedisBytesPerNode = b / per
		}
	}
	nc, err := nats.Connect(d.NATSURL(), nats.Name("fleetbench"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		return err
	}
	sc.NATSBytesPerNode = float64(ai.Store) / per
	return nil
}

// procStatus reads the kB figures of /proc/self/status.
func procStatus() (map[string]int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

// WriteScale prints each result's scale figures as a table.
func WriteScale(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tnodes\tnodes/s\tmax fds\tRSS peak MiB\tRSS KiB/node\theap KiB/node\tredis B/node\tnats B/node\tconductor replaced at s\tits start-up ms\tpower sync s (nodes)\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%.0f\t%.1f\t%.1f\t%.0f\t%.0f\t%.1f\t%.0f\t%.1f (%d)\t\n", r.Strategy, r.Nodes, r.NodesPerSecond, r.MaxFDs,
			r.RSSPeakMiB, r.RSSPerNodeKiB, r.HeapPerNodeKiB, r.RedisBytesPerNode, r.NATSBytesPerNode, r.ConductorReplacedAts, r.ConductorStartupms,
			r.PowerSyncs, r.PowerSyncNodes)
	}
	return tw.Flush()
}
