package conductor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bsm/redislock"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// leaseTTL is the periodic lease in these tests: a tenth of the time the
// sweeps take to notice anything in production, so they run in about a
// second.
const leaseTTL = 200 * time.Millisecond

// fastSweeps makes a conductor try for the periodic lease every 20 ms, hold
// it for leaseTTL, and sync power states at every sweep.
func fastSweeps(c *conductor.Config) {
	c.Periodic, c.PeriodicLease, c.PowerSync = 20*time.Millisecond, leaseTTL, time.Nanosecond
}

// sweeps watches the power syncs of the periodic sweeps through a driver
// whose every power-state read is recorded with the conductor making it,
// and through each conductor's lease requests. While held, reads block until
// let go or until their context ends, so a sweep lasts as long as a test
// wants.
type sweeps struct {
	release chan struct{}
	once    sync.Once

	mu      sync.Mutex
	active  map[string]int       // reads in flight, per conductor
	reads   map[string]int       // reads started, per conductor
	causes  map[string][]error   // why held reads were cut short, per conductor
	refused map[string]time.Time // when each conductor was last refused the lease
	overlap string               // the first time two conductors read at once
}

// newSweeps enrolls two nodes of driver "probe" (the sweeps' power sync
// reads them) and makes every conductor e starts use the probe driver and
// report its lease requests.
func newSweeps(t *testing.T, e *env, held bool) *sweeps {
	t.Helper()
	s := &sweeps{release: make(chan struct{}), active: map[string]int{}, reads: map[string]int{},
		causes: map[string][]error{}, refused: map[string]time.Time{}}
	if !held {
		s.letGo()
	}
	t.Cleanup(s.letGo)
	e.deps = func(host string, d *conductor.Deps) {
		d.Drivers["probe"] = conductor.NewPowerDriver(func(map[string]any) error { return nil },
			func(wire.Node) (probe, error) { return probe{s: s, host: host}, nil })
		d.Leases = watchedLeases{Leases: d.Leases, s: s, host: host}
	}
	for i := range 2 {
		if _, err := e.inv.CreateNode(t.Context(), wire.Node{UUID: wire.NewUUID(), Name: fmt.Sprint("probe-", i),
			Driver: "probe", ProvisionState: wire.StateManageable, CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// letGo ends the held reads and stops holding.
func (s *sweeps) letGo() { s.once.Do(func() { close(s.release) }) }

func (s *sweeps) enter(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for other, n := range s.active {
		if other != host && n > 0 && s.overlap == "" {
			s.overlap = fmt.Sprintf("%s read a power state while %s's sweep was reading one", host, other)
		}
	}
	s.active[host]++
	s.reads[host]++
}

func (s *sweeps) exit(host string, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[host]--
	if cause != nil {
		s.causes[host] = append(s.causes[host], cause)
	}
}

func (s *sweeps) refuse(host string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[host] = time.Now()
}

// state returns what host did: reads in flight, reads started, why reads
// were cut short, and when it was last refused the lease.
func (s *sweeps) state(host string) (active, reads int, causes []error, refused time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active[host], s.reads[host], append([]error(nil), s.causes[host]...), s.refused[host]
}

func (s *sweeps) checkNoOverlap(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overlap != "" {
		t.Fatalf("two sweeps at once: %s", s.overlap)
	}
}

// probe is a node's Power that reports its reads to sweeps.
type probe struct {
	s    *sweeps
	host string
}

func (p probe) PowerState(ctx context.Context) (wire.PowerState, error) {
	p.s.enter(p.host)
	select {
	case <-p.s.release:
		p.s.exit(p.host, nil)
		return wire.PowerOff, nil
	case <-ctx.Done():
		p.s.exit(p.host, context.Cause(ctx))
		return "", context.Cause(ctx)
	}
}

func (probe) SetPower(context.Context, wire.PowerState) error            { return nil }
func (probe) SetBootDevice(context.Context, wire.BootDevice, bool) error { return nil }

// watchedLeases reports when a conductor is refused the periodic lease.
type watchedLeases struct {
	conductor.Leases
	s    *sweeps
	host string
}

func (l watchedLeases) Obtain(ctx context.Context, key string, ttl time.Duration, opt *redislock.Options) (*redislock.Lock, error) {
	lk, err := l.Leases.Obtain(ctx, key, ttl, opt)
	if errors.Is(err, redislock.ErrNotObtained) {
		l.s.refuse(l.host)
	}
	return lk, err
}

// TestPeriodicLeaderDies: the conductor leading the sweeps dies (kill -9:
// its connections cut, nothing released); its lease runs out and the other
// conductor, refused until then, takes the sweeps over.
func TestPeriodicLeaderDies(t *testing.T) {
	e := newEnv(t)
	s := newSweeps(t, e, false)
	leader := e.startConductor(t, "c1", nil, fastSweeps)
	waitFor(t, "c1 to sweep", func() bool { _, reads, _, _ := s.state("c1"); return reads > 0 })
	e.startConductor(t, "c2", nil, fastSweeps)
	waitFor(t, "c2 to be refused the lease", func() bool { _, _, _, refused := s.state("c2"); return !refused.IsZero() })
	if _, reads, _, _ := s.state("c2"); reads > 0 {
		t.Fatalf("c2 swept %d nodes while c1 led", reads)
	}

	leader.nc.Close()
	_ = leader.rc.Close()
	leader.stop()
	killed := time.Now()
	waitFor(t, "c2 to take the sweeps over", func() bool { _, reads, _, _ := s.state("c2"); return reads > 0 })
	t.Logf("c2 took over %s after c1 died (lease %s)", time.Since(killed).Round(time.Millisecond), leaseTTL)
	s.checkNoOverlap(t)
}

// TestPeriodicLongSweepKeepsLease: a sweep that runs several times longer
// than the lease keeps it, so the other conductor is refused throughout and
// never sweeps at the same time; the leader goes on sweeping afterwards.
func TestPeriodicLongSweepKeepsLease(t *testing.T) {
	e := newEnv(t)
	s := newSweeps(t, e, true)
	e.startConductor(t, "c1", nil, fastSweeps)
	waitFor(t, "c1's sweep to read a power state", func() bool { active, _, _, _ := s.state("c1"); return active > 0 })
	held := time.Now()
	e.startConductor(t, "c2", nil, fastSweeps)
	late := held.Add(3 * leaseTTL)
	waitFor(t, "c2 to be refused the lease three lease TTLs into c1's sweep", func() bool {
		_, reads, _, refused := s.state("c2")
		return reads > 0 || refused.After(late)
	})
	s.checkNoOverlap(t)
	if _, reads, _, _ := s.state("c2"); reads > 0 {
		t.Fatalf("c2 swept %d nodes during c1's sweep", reads)
	}
	if active, _, causes, _ := s.state("c1"); active < 1 || len(causes) > 0 {
		t.Fatalf("c1's held sweep: %d reads in flight, cut short by %v; want some, none", active, causes)
	}

	s.letGo()
	_, before, _, _ := s.state("c1")
	waitFor(t, "c1 to sweep again", func() bool { _, reads, _, _ := s.state("c1"); return reads >= before+3 })
	s.checkNoOverlap(t)
	if _, reads, _, _ := s.state("c2"); reads > 0 {
		t.Fatalf("c2 swept %d nodes while c1 led", reads)
	}
}

// TestPeriodicLeaseLostStopsSweep: when the leader cannot keep its lease,
// the sweep in flight is cancelled with cause ErrLeaseLost; when that is
// because the leader lost Redis, the other conductor takes over, and not
// before the lost leader's sweep has stopped.
func TestPeriodicLeaseLostStopsSweep(t *testing.T) {
	tests := []struct {
		name string
		// lose makes c1 lose the lease.
		lose func(t *testing.T, e *env, c1 *conductorProc)
		// takeover runs c2 beside c1 and expects it to take over. Not when
		// the key is deleted: that breaks mutual exclusion by itself, like
		// Redis losing its data, and c2 could start before c1 notices.
		takeover bool
	}{
		{"lease key deleted", func(t *testing.T, e *env, _ *conductorProc) {
			if n, err := e.rc.Del(t.Context(), "ifl:periodic:{}").Result(); err != nil || n != 1 {
				t.Fatalf("deleting the lease: %d keys, %v", n, err)
			}
		}, false},
		{"redis connection closed", func(_ *testing.T, _ *env, c1 *conductorProc) {
			_ = c1.rc.Close() // c1 runs on, cut off from Redis
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := newSweeps(t, e, true)
			c1 := e.startConductor(t, "c1", nil, fastSweeps)
			waitFor(t, "c1's sweep to read a power state", func() bool { active, _, _, _ := s.state("c1"); return active > 0 })
			if tt.takeover {
				e.startConductor(t, "c2", nil, fastSweeps)
				waitFor(t, "c2 to be refused the lease", func() bool { _, _, _, refused := s.state("c2"); return !refused.IsZero() })
			}
			tt.lose(t, e, c1)
			waitFor(t, "c1's sweep to be cancelled", func() bool { _, _, causes, _ := s.state("c1"); return len(causes) > 0 })
			if _, _, causes, _ := s.state("c1"); !errors.Is(causes[0], conductor.ErrLeaseLost) {
				t.Fatalf("c1's sweep cancelled with cause %v, want %v", causes[0], conductor.ErrLeaseLost)
			}
			if tt.takeover {
				waitFor(t, "c2 to take the sweeps over", func() bool { _, reads, _, _ := s.state("c2"); return reads > 0 })
			}
			s.checkNoOverlap(t)
		})
	}
}
