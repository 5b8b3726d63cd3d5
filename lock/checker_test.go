package lock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
)

// interval is one holding of a resource as its holder saw it.
type interval struct {
	token      uint64
	start, end time.Time
	lost       bool // ended by ErrLost: judged by fencing only
}

type checkerOpts struct {
	goroutines, clients, resources int
	grants                         int           // stop after this many grants
	budget                         time.Duration // or after this long
	crashEvery                     int           // 1 in N holders abandons its lock (0: never)
	pauseEvery                     int           // 1 in N holders freezes past its TTL, then writes
	restart                        func(t *testing.T, srv *redistest.Server)
	strict                         bool // holding intervals must never overlap
}

// runChecker hammers resources from many goroutines over several Redis
// clients in mixed modes and checks mutual exclusion and fencing.
func runChecker(t *testing.T, o checkerOpts) {
	var srvOpts []redistest.Option
	if o.restart != nil {
		srvOpts = append(srvOpts, redistest.WithAOF())
	}
	srv := redistest.Start(t, srvOpts...)
	cfg := fastConfig()
	cfg.TTL = 400 * time.Millisecond
	cfg.Fallback = 20 * time.Millisecond
	cfg.Interval = 2 * time.Millisecond
	cfg.Attempts = 2
	lockers := make([]*Locker, o.clients)
	for i := range lockers {
		lockers[i] = newLocker(t, newClient(t, srv), cfg)
	}

	var (
		mu        sync.Mutex
		held      = make(map[string][]interval)
		stores    = make(map[string]*fencedStore)
		inside    = make(map[string]*atomic.Int32)
		grants    atomic.Int64
		modes     [2]atomic.Int64
		locked    atomic.Int64
		crashes   atomic.Int64
		pauses    atomic.Int64
		violation atomic.Value
	)
	resources := make([]string, o.resources)
	for i := range resources {
		resources[i] = fmt.Sprintf("node-%d", i)
		stores[resources[i]] = &fencedStore{}
		inside[resources[i]] = &atomic.Int32{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), o.budget)
	defer cancel()
	var wg sync.WaitGroup
	if o.restart != nil {
		wg.Go(func() {
			// Restart once a third of the grants are in.
			for grants.Load() < int64(o.grants/3) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			if ctx.Err() == nil {
				o.restart(t, srv)
			}
		})
	}
	for g := range o.goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			l := lockers[g%len(lockers)]
			for ctx.Err() == nil && grants.Load() < int64(o.grants) {
				res := resources[rng.IntN(len(resources))]
				mode := Mode(rng.IntN(2))
				lk, err := l.Acquire(ctx, res, &Options{Mode: mode, Purpose: fmt.Sprint("g", g)})
				if errors.Is(err, ErrLocked) {
					locked.Add(1)
					continue
				}
				if err != nil {
					continue // ctx ended, or Redis restarting
				}
				iv := interval{token: lk.Token(), start: time.Now()}
				if n := inside[res].Add(1); n != 1 && o.strict {
					violation.Store(fmt.Sprintf("%s: %d holders inside at once", res, n))
				}
				stores[res].write(lk.Token())
				grants.Add(1)
				modes[mode].Add(1)

				crash := o.crashEvery > 0 && rng.IntN(o.crashEvery) == 0
				pause := !crash && o.pauseEvery > 0 && rng.IntN(o.pauseEvery) == 0
				work := time.Duration(rng.IntN(300)) * time.Microsecond
				switch {
				case crash:
					// The process dies: no more renewals, no release.
					lk.freeze()
					crashes.Add(1)
				case pause:
					lk.freeze()
				default:
					if wait.Sleep(lk.Context(), work) != nil {
						iv.lost = true
					}
				}
				inside[res].Add(-1)
				iv.end = time.Now()
				mu.Lock()
				held[res] = append(held[res], iv)
				mu.Unlock()
				if pause {
					// Frozen past its lease, it wakes and writes anyway;
					// the store must not take a write older than a newer one.
					time.Sleep(cfg.TTL + cfg.TTL/2)
					stores[res].write(lk.Token())
					pauses.Add(1)
				}
				if !crash && !pause {
					_ = lk.Release(context.WithoutCancel(ctx))
				}
			}
		})
	}
	wg.Wait()

	if v := violation.Load(); v != nil {
		t.Fatalf("mutual exclusion violated: %v", v)
	}
	total := grants.Load()
	if total < int64(o.grants)/2 {
		t.Fatalf("only %d grants within %s, want at least %d", total, o.budget, o.grants/2)
	}
	// Both modes must have contended. Standard mode never barges past the
	// line, so under this load most of its tries end in ErrLocked: that it
	// is granted at all is timing, that it tried is not.
	if standardTries := modes[Standard].Load() + locked.Load(); standardTries == 0 || modes[Patient].Load() == 0 {
		t.Fatalf("standard-mode tries %d, patient grants %d: want both modes contending", standardTries, modes[Patient].Load())
	}
	for _, res := range resources {
		ivs := held[res]
		slices.SortFunc(ivs, func(a, b interval) int { return a.start.Compare(b.start) })
		for i := 1; i < len(ivs); i++ {
			prev, cur := ivs[i-1], ivs[i]
			if cur.token <= prev.token {
				t.Fatalf("%s: token %d granted after %d (in grant order)", res, cur.token, prev.token)
			}
			if o.strict && !prev.lost && cur.start.Before(prev.end) {
				t.Fatalf("%s: holding of token %d [%s, %s] overlaps token %d starting %s", res,
					prev.token, prev.start.Format(time.StampMicro), prev.end.Format(time.StampMicro),
					cur.token, cur.start.Format(time.StampMicro))
			}
		}
	}
	var rejected int
	for _, s := range stores {
		rejected += s.rejected
	}
	if o.pauseEvery > 0 && pauses.Load() > 0 && rejected == 0 {
		t.Fatalf("%d holders wrote after pausing past their lease and none was rejected", pauses.Load())
	}
	t.Logf("grants %d (standard %d, patient %d), ErrLocked %d, crashes %d, pauses %d, stale writes rejected %d",
		total, modes[Standard].Load(), modes[Patient].Load(), locked.Load(), crashes.Load(), pauses.Load(), rejected)
}

func TestChecker(t *testing.T) {
	if testing.Short() {
		t.Skip("the checker runs thousands of grants; skipped by -short (make test-unit)")
	}
	base := checkerOpts{goroutines: 64, clients: 4, resources: 6, grants: 3000, budget: 60 * time.Second, strict: true}
	tests := []struct {
		name string
		mod  func(*checkerOpts)
	}{
		{"mixed modes", func(*checkerOpts) {}},
		{"crashes and pauses past the TTL", func(o *checkerOpts) {
			o.grants, o.crashEvery, o.pauseEvery = 1500, 150, 150
		}},
		{"redis restart keeping data", func(o *checkerOpts) {
			o.grants = 2000
			o.restart = func(t *testing.T, srv *redistest.Server) { srv.Restart(t, true) }
		}},
		{"redis restart losing data: fencing holds", func(o *checkerOpts) {
			o.grants, o.strict = 2000, false
			o.restart = func(t *testing.T, srv *redistest.Server) { srv.Restart(t, false) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			tt.mod(&o)
			runChecker(t, o)
		})
	}
}
