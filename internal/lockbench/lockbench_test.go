package lockbench

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

func clientFactory(tb testing.TB, srv *redistest.Server) func() *redis.Client {
	return func() *redis.Client {
		opts := srv.Options()
		opts.ContextTimeoutEnabled = true
		c := redis.NewClient(opts)
		tb.Cleanup(func() { _ = c.Close() })
		return c
	}
}

// TestRun runs a small version of `ironfleet bench lock` and checks what the
// numbers must show whatever the machine: ironfleet never loses a handoff
// and shares a hot key fairly.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every workload; skipped by -short")
	}
	srv := redistest.Start(t)
	newClient := clientFactory(t, srv)
	impls := Impls(newClient)
	// ironfleet and redislock at 10 ms: the 1 s poller and redsync only
	// make the run longer, not the check stronger.
	impls = []Impl{impls[0], impls[2]}
	results, err := Run(t.Context(), newClient(), impls, Config{
		HandoffSamples: 20, HandoffBudget: 2 * time.Second,
		HotKeyProcs: 8, HotKeyDuration: 500 * time.Millisecond,
		Rounds: 3,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("got %d results, want 2", len(results))
	}
	ours := results[0]
	if ours.Impl != "ironfleet" || ours.HandoffSamples == 0 || ours.HotKeyGrantsPerSecond == 0 || ours.RTTMicros == 0 {
		t.Fatalf("ironfleet result incomplete: %+v", ours)
	}
	if ours.StarvationLostHandoffs != 0 || ours.StarvationRounds != 3 {
		t.Fatalf("ironfleet lost %d of %d handoffs, want 0 of 3", ours.StarvationLostHandoffs, ours.StarvationRounds)
	}
	if ours.JainIndex < 0.95 {
		t.Fatalf("ironfleet Jain index %.3f on a hot key, want ≥ 0.95 (a fair line)", ours.JainIndex)
	}
}

func TestJain(t *testing.T) {
	tests := []struct {
		name string
		x    []int
		want float64
	}{
		{"equal", []int{5, 5, 5, 5}, 1},
		{"one takes all", []int{8, 0, 0, 0}, 0.25},
		{"nothing", []int{0, 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jain(tt.x); got != tt.want {
				t.Fatalf("jain(%v) = %v, want %v", tt.x, got, tt.want)
			}
		})
	}
}

// BenchmarkHandoff: one process holds a key while another waits for it (2 ms
// after it started waiting, so a poller sleeps between tries), then
// releases; one op is one handoff, from the release call to the other
// process holding the key. ns/op is the mean; p50-µs the median. For
// ironfleet and for bsm/redislock polling at 10 ms.
func BenchmarkHandoff(b *testing.B) {
	srv := redistest.Start(b)
	impls := Impls(clientFactory(b, srv))
	for _, impl := range []Impl{impls[0], impls[2]} {
		b.Run(impl.Name(), func(b *testing.B) {
			ctx := context.Background()
			ps, closeAll, err := processes(ctx, impl, 2)
			if err != nil {
				b.Fatal(err)
			}
			defer closeAll()
			k := key(impl, "go-bench-handoff")
			held, err := ps[0].Wait(ctx, k, "p0")
			if err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			turn := 0
			for b.Loop() {
				type grant struct {
					h  Held
					at time.Time
				}
				got := make(chan grant, 1)
				go func() {
					h, err := ps[1-turn].Wait(ctx, k, "p")
					if err != nil {
						b.Error(err)
					}
					got <- grant{h, time.Now()}
				}()
				b.StopTimer()
				time.Sleep(2 * time.Millisecond)
				b.StartTimer()
				start := time.Now()
				if err := held.Release(ctx); err != nil {
					b.Fatal(err)
				}
				g := <-got
				lat = append(lat, g.at.Sub(start))
				held, turn = g.h, 1-turn
			}
			_ = held.Release(ctx)
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
			b.ReportMetric(micros(percentile(lat, 0.5)), "p50-µs")
		})
	}
}

// BenchmarkHotKey: 16 processes take turns on one key for 1 s per
// iteration; ns/op is per grant. For ironfleet and for bsm/redislock polling at 10 ms, with
// the fairness that buys (Jain's index over grants per process).
func BenchmarkHotKey(b *testing.B) {
	srv := redistest.Start(b)
	newClient := clientFactory(b, srv)
	impls := Impls(newClient)
	admin := newClient()
	for _, impl := range []Impl{impls[0], impls[2]} {
		b.Run(impl.Name(), func(b *testing.B) {
			cfg := Config{HotKeyDuration: time.Second}
			cfg.defaults()
			var rate, jainSum float64
			for b.Loop() {
				var r Result
				if err := hotKey(context.Background(), admin, impl, cfg, &r); err != nil {
					b.Fatal(err)
				}
				rate += r.HotKeyGrantsPerSecond
				jainSum += r.JainIndex
			}
			// Per grant, over the timed runs only (not the processes'
			// setup and warm-up).
			n := float64(b.N)
			b.ReportMetric(1e9*n/rate, "ns/op")
			b.ReportMetric(rate/n, "grants/s")
			b.ReportMetric(jainSum/n, "jain")
		})
	}
}

// BenchmarkUncontended: acquire and release a free key, one process.
func BenchmarkUncontended(b *testing.B) {
	srv := redistest.Start(b)
	impls := Impls(clientFactory(b, srv))
	for _, impl := range []Impl{impls[0], impls[2], impls[3]} {
		b.Run(impl.Name(), func(b *testing.B) {
			ctx := context.Background()
			ps, closeAll, err := processes(ctx, impl, 1)
			if err != nil {
				b.Fatal(err)
			}
			defer closeAll()
			k := key(impl, "go-bench-free")
			for b.Loop() {
				h, err := ps[0].Wait(ctx, k, "p")
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
