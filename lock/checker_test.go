package lock

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// interval is one holding of a resource as its holder saw it.
type interval struct {
	token uint64
	// called is when Acquire was called, start when it returned, end when
	// the holder stopped working (released, lost, froze).
	called, start, end time.Time
	lost               bool // ended by ErrLost: judged by fencing only
}

type checkerOpts struct {
	goroutines, clients, resources int
	grants                         int           // stop after this many grants
	budget                         time.Duration // or after this long
	crashEvery                     int           // 1 in N holders abandons its lock (0: never)
	pauseEvery                     int           // 1 in N holders freezes past its TTL, then writes
	// restart restarts Redis once a third of the grants are in, keeping
	// its data (AOF) unless loseData.
	restart, loseData bool
	// cut and block fault one Locker at a time, in turn: cut fails its
	// commands for TTL/2 to 2 TTL while its pub/sub stays up; block holds
	// them for 1.5 TTL, a process frozen past its lease while grants to its
	// waiters are in flight. The run goes on until at least faults were
	// made.
	cut, block bool
	faults     int
}

// runChecker hammers resources from many goroutines over several Lockers
// (processes) in mixed modes; each holder writes to a fenced store when
// granted and again when its work is done. It checks that at no instant two
// Locks of one resource have live contexts (liveLocks), that holdings do
// not overlap, and fencing (checkFencing). After a restart that lost the
// data, only holders granted on either side of it may overlap.
func runChecker(t *testing.T, o checkerOpts) {
	var srvOpts []redistest.Option
	if o.restart {
		srvOpts = append(srvOpts, redistest.WithAOF())
	}
	srv := redistest.Start(t, srvOpts...)
	cfg := fastConfig()
	cfg.TTL = 400 * time.Millisecond
	cfg.Fallback = 20 * time.Millisecond
	cfg.Interval = 2 * time.Millisecond
	cfg.Attempts = 2
	lockers := make([]*Locker, o.clients)
	fs := make([]*faults, o.clients)
	for i := range lockers {
		var c *redis.Client
		c, fs[i] = newFaultyClient(t, srv)
		lockers[i] = newLocker(t, c, cfg)
	}

	var (
		mu      sync.Mutex
		held    = make(map[string][]interval)
		stores  = make(map[string]*fencedStore)
		grants  atomic.Int64
		modes   [2]atomic.Int64
		locked  atomic.Int64
		crashes atomic.Int64
		pauses  atomic.Int64
		// restartBegan and restartDone are Unix µs, the unit of tokens
		// granted by the server's clock (same host): 0 until then.
		restartBegan, restartDone atomic.Int64
	)
	live := &liveLocks{live: make(map[string][]*Lock)}
	if o.loseData {
		// A token below restartBegan was granted by the server before the
		// restart, one above restartDone by the server after it: two
		// holders granted on either side may both be live until the older
		// one's next renewal (fencing keeps their writes apart), two on
		// the same side may not.
		live.excused = func(a, b uint64) bool {
			began, done := restartBegan.Load(), restartDone.Load()
			if began == 0 {
				return false
			}
			before := func(x uint64) bool { return int64(x) < began }            //nolint:gosec // µs since 1970 fit
			after := func(x uint64) bool { return done != 0 && int64(x) > done } //nolint:gosec // µs since 1970 fit
			// Excused: not both granted before the restart, nor both after.
			return (!before(a) || !before(b)) && (!after(a) || !after(b))
		}
	}
	resources := make([]string, o.resources)
	for i := range resources {
		resources[i] = fmt.Sprintf("node-%d", i)
		stores[resources[i]] = &fencedStore{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), o.budget)
	defer cancel()
	// inFlight counts wake-ups published to a Locker while it was faulted:
	// grants its waiters could not confirm in time, or could only late.
	var faultsMade, inFlight atomic.Int64
	running := func() bool {
		return ctx.Err() == nil && (grants.Load() < int64(o.grants) || faultsMade.Load() < int64(o.faults))
	}
	var wg sync.WaitGroup
	if o.restart {
		wg.Go(func() {
			// Restart once a third of the grants are in.
			for grants.Load() < int64(o.grants/3) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			if ctx.Err() == nil {
				restartBegan.Store(time.Now().UnixMicro())
				srv.Restart(t, !o.loseData)
				restartDone.Store(time.Now().UnixMicro())
			}
		})
	}
	var monitor *redis.PubSub
	if o.cut || o.block {
		monitor = newClient(t, srv).Subscribe(ctx)
		channels := make(map[string]*faults, len(lockers))
		for i, l := range lockers {
			channels[l.channel] = fs[i]
			if err := monitor.Subscribe(ctx, l.channel); err != nil {
				t.Fatal(err)
			}
		}
		wg.Go(func() {
			for m := range monitor.Channel() {
				if channels[m.Channel].faulty() {
					inFlight.Add(1)
				}
			}
		})
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(7, 42))
			for i := 0; running(); i++ {
				f := fs[i%len(fs)]
				if !sleepCtx(ctx, cfg.TTL/2+time.Duration(rng.Int64N(int64(cfg.TTL/2)))) {
					return
				}
				if o.cut {
					f.setCut(true)
					sleepCtx(ctx, cfg.TTL/2+time.Duration(rng.Int64N(int64(3*cfg.TTL/2))))
					f.setCut(false)
				}
				if o.block {
					unblock := f.block()
					sleepCtx(ctx, 3*cfg.TTL/2)
					unblock()
				}
				faultsMade.Add(1)
			}
		})
	}
	for g := range o.goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			l := lockers[g%len(lockers)]
			for running() {
				res := resources[rng.IntN(len(resources))]
				mode := Mode(rng.IntN(2))
				called := time.Now()
				lk, err := l.Acquire(ctx, res, &Options{Mode: mode, Purpose: fmt.Sprint("g", g)})
				if errors.Is(err, ErrLocked) {
					locked.Add(1)
					continue
				}
				if err != nil {
					continue // ctx ended, Redis restarting, or commands cut
				}
				live.add(res, lk)
				iv := interval{token: lk.Token(), called: called, start: time.Now()}
				stores[res].write(lk.Token())
				grants.Add(1)
				modes[mode].Add(1)

				crash := o.crashEvery > 0 && rng.IntN(o.crashEvery) == 0
				pause := !crash && o.pauseEvery > 0 && rng.IntN(o.pauseEvery) == 0
				work := time.Duration(rng.IntN(300)) * time.Microsecond
				switch {
				case crash, pause:
					// The process dies, or freezes: no more renewals, no
					// release, and its context is never cancelled — nothing
					// runs in it any more, so it is no longer live.
					live.forget(res, lk)
					lk.freeze()
					if crash {
						crashes.Add(1)
					}
				default:
					select {
					case <-time.After(work):
						// The work's last write, under the lock.
						stores[res].write(lk.Token())
					case <-lk.Context().Done():
						iv.lost = true
					}
				}
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
	for running() {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if monitor != nil {
		_ = monitor.Close() // ends the goroutine counting wake-ups
	}
	wg.Wait()

	if err := live.err(); err != nil {
		if o.restart {
			t.Fatalf("mutual exclusion violated: %v (the restart began at %d µs, was done at %d µs)", err, restartBegan.Load(), restartDone.Load())
		}
		t.Fatalf("mutual exclusion violated: %v", err)
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
	if o.restart && restartDone.Load() == 0 {
		t.Fatal("Redis was never restarted")
	}
	if got := faultsMade.Load(); got < int64(o.faults) {
		t.Fatalf("%d faults made within %s, want %d", got, o.budget, o.faults)
	}
	if (o.cut || o.block) && inFlight.Load() == 0 {
		t.Fatalf("%d faults made, but no grant was ever in flight to a faulted Locker", faultsMade.Load())
	}
	if o.loseData && live.overlaps == 0 {
		t.Logf("no holder granted before the data was lost was still live after it (the restart caught none holding)")
	}
	for _, res := range resources {
		ivs := held[res]
		if err := checkFencing(ivs, stores[res].accepted); err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		slices.SortFunc(ivs, func(a, b interval) int { return a.start.Compare(b.start) })
		for i := 1; i < len(ivs); i++ {
			prev, cur := ivs[i-1], ivs[i]
			if !o.loseData && !prev.lost && cur.start.Before(prev.end) {
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
	t.Logf("grants %d (standard %d, patient %d), ErrLocked %d, crashes %d, pauses %d, stale writes rejected %d, "+
		"faults %d with %d grants in flight to a faulted Locker, most live contexts of a resource at once %d "+
		"(not counting %d pairs live across the loss of the data)",
		total, modes[Standard].Load(), modes[Patient].Load(), locked.Load(), crashes.Load(), pauses.Load(), rejected,
		faultsMade.Load(), inFlight.Load(), live.most, live.overlaps)
}

// liveLocks counts, per resource, the Locks whose Context is live (not yet
// done): at no instant may there be two. A Lock counts from when its
// Acquire returns until its context is done; each Acquire's return is
// checked against the Locks still live at that instant, so a holder that is
// late to give up a lapsed lease is caught as well as a second grant.
type liveLocks struct {
	// excused, when set, says that two holders with these tokens may both
	// be live (a restart lost the data between their grants).
	excused func(a, b uint64) bool

	mu        sync.Mutex
	live      map[string][]*Lock
	most      int // most Locks of one resource live at once, not counting excused pairs
	overlaps  int // excused pairs
	violation error
}

func (ll *liveLocks) add(res string, lk *Lock) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	live := slices.DeleteFunc(ll.live[res], func(o *Lock) bool { return o.Context().Err() != nil })
	if lk.Context().Err() == nil {
		n := 1
		for _, o := range live {
			if ll.excused != nil && ll.excused(o.Token(), lk.Token()) {
				ll.overlaps++
				continue
			}
			n++
			if ll.violation == nil {
				ll.violation = fmt.Errorf("%s: token %d granted while the holder of token %d still has a live context", res, lk.Token(), o.Token())
			}
		}
		ll.most = max(ll.most, n)
		live = append(live, lk)
	}
	ll.live[res] = live
}

// forget drops a Lock whose process froze or died: nothing runs under its
// context any more (fencing judges its later writes).
func (ll *liveLocks) forget(res string, lk *Lock) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.live[res] = slices.DeleteFunc(ll.live[res], func(o *Lock) bool { return o == lk })
}

func (ll *liveLocks) err() error {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	return ll.violation
}

func TestChecker(t *testing.T) {
	if testing.Short() {
		t.Skip("the checker runs thousands of grants; skipped by -short (make test-unit)")
	}
	base := checkerOpts{goroutines: 64, clients: 4, resources: 6, grants: 3000, budget: 60 * time.Second}
	tests := []struct {
		name string
		mod  func(*checkerOpts)
	}{
		{"mixed modes", func(*checkerOpts) {}},
		{"crashes and pauses past the TTL", func(o *checkerOpts) {
			o.grants, o.crashEvery, o.pauseEvery = 1500, 150, 150
		}},
		{"redis restart keeping data", func(o *checkerOpts) {
			o.grants, o.restart = 2000, true
		}},
		{"redis restart losing data", func(o *checkerOpts) {
			o.grants, o.restart, o.loseData = 2000, true, true
		}},
		{"waiter commands cut, pub/sub up", func(o *checkerOpts) {
			o.grants, o.cut, o.faults = 1500, true, 8
		}},
		{"locker frozen past its TTL", func(o *checkerOpts) {
			o.grants, o.block, o.faults = 1500, true, 8
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

// checkFencing checks one resource's history against what fencing
// promises, judging the order of grants only by what clients can know of
// it (after a restart that lost the data, the order in which clients saw
// their grants is not the order they were made in):
//   - every grant has a token of its own;
//   - a grant whose Acquire was called after another's returned has the
//     higher token (it was made later, on whichever server); Acquires under
//     way at once are not ordered;
//   - the store never accepted a token below one it had accepted before,
//     so of two holders the older never wrote after the younger's first
//     write.
func checkFencing(ivs []interval, accepted []uint64) error {
	seen := make(map[uint64]bool, len(ivs))
	for _, iv := range ivs {
		if seen[iv.token] {
			return fmt.Errorf("token %d granted twice", iv.token)
		}
		seen[iv.token] = true
	}
	byStart := slices.SortedFunc(slices.Values(ivs), func(a, b interval) int { return a.start.Compare(b.start) })
	byCalled := slices.SortedFunc(slices.Values(ivs), func(a, b interval) int { return a.called.Compare(b.called) })
	var before *interval // highest token among the grants returned so far
	j := 0
	for _, b := range byCalled {
		for ; j < len(byStart) && byStart[j].start.Before(b.called); j++ {
			if before == nil || byStart[j].token > before.token {
				before = &byStart[j]
			}
		}
		if before != nil && b.token <= before.token {
			return fmt.Errorf("token %d granted to an Acquire called at %s, after token %d was granted (returned at %s)",
				b.token, b.called.Format(time.StampMicro), before.token, before.start.Format(time.StampMicro))
		}
	}
	for i := 1; i < len(accepted); i++ {
		if accepted[i] < accepted[i-1] {
			return fmt.Errorf("the store accepted %d after %d", accepted[i], accepted[i-1])
		}
	}
	return nil
}

// TestCheckFencing: the checker's fencing verdicts on histories written by
// hand, so that a flaky verdict cannot hide in the checker itself.
func TestCheckFencing(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(1000, 0).Add(time.Duration(ms) * time.Millisecond) }
	iv := func(token uint64, called, start int) interval {
		return interval{token: token, called: at(called), start: at(start), end: at(start + 1)}
	}
	tests := []struct {
		name     string
		ivs      []interval
		accepted []uint64
		wantErr  string // "" for none
	}{
		{"grants in turn", []interval{iv(1, 0, 1), iv(2, 2, 3), iv(3, 1, 5)}, []uint64{1, 2, 3}, ""},
		// Both Acquires were under way at once; the one granted first (by
		// the old server, before it lost its data) was seen returning last.
		// Nothing orders them: the fenced store keeps their writes apart.
		{"concurrent calls seen out of grant order", []interval{iv(200, 0, 2), iv(100, 0, 3)}, []uint64{200}, ""},
		{"token below one granted before the call", []interval{iv(200, 0, 1), iv(100, 2, 3)}, nil, "token 100"},
		{"same token twice", []interval{iv(7, 0, 1), iv(7, 0, 2)}, nil, "token 7"},
		{"store accepted a lower token after a higher", []interval{iv(1, 0, 1), iv(2, 0, 2)}, []uint64{2, 1}, "accepted 1 after 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFencing(tt.ivs, tt.accepted)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no violation", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want a violation mentioning %q", err, tt.wantErr)
			}
		})
	}
}
