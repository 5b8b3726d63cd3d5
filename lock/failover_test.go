package lock

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
)

// failoverConfig is fastConfig with a lease that a Sentinel failover (about
// 1–2 s with down-after 500ms) may or may not outlast.
func failoverConfig() Config {
	cfg := fastConfig()
	cfg.TTL = time.Second
	cfg.Fallback = 50 * time.Millisecond
	cfg.Interval = 5 * time.Millisecond
	return cfg
}

// TestFailoverUnderLoad: holders in both modes acquire, write with their
// fencing token and release, through go-redis failover clients, while the
// master is killed with SIGKILL and three Sentinels promote its replica.
// Grants go on after the failover, every Locker's wake-up subscription is
// on the new master, and no fresh grant's token is below one a fenced store
// already accepted: tokens the store accepts never go backwards.
func TestFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Sentinels through a failover; skipped by -short (make test-unit)")
	}
	f := redistest.StartFailover(t, redistest.WithSentinels(3))
	cfg := failoverConfig()
	lockers := make([]*Locker, 3)
	for i := range lockers {
		lockers[i] = newLocker(t, f.Client(t), cfg)
	}
	const goroutines, resources, before, after = 12, 4, 150, 150
	stores := make([]*fencedStore, resources)
	for i := range stores {
		stores[i] = &fencedStore{}
	}
	var (
		grants, failedAcquires  atomic.Int64
		freshRejected, lateRejd atomic.Int64
		lost                    atomic.Int64
		afterKill               atomic.Int64 // grants requested after the kill
		killed                  atomic.Bool
		firstAfter              atomic.Int64 // ns from the kill to the first such grant
	)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	var killedAt time.Time
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			l := lockers[g%len(lockers)]
			for ctx.Err() == nil && afterKill.Load() < after {
				res := rng.IntN(resources)
				mode := Mode(rng.IntN(2))
				requestedAfterKill := killed.Load()
				lk, err := l.Acquire(ctx, "n"+strconv.Itoa(res), &Options{Mode: mode})
				if err != nil {
					if !errors.Is(err, ErrLocked) {
						// Redis unreachable while the Sentinels fail over.
						failedAcquires.Add(1)
						_ = wait.Sleep(ctx, 10*time.Millisecond)
					}
					continue
				}
				// A fresh grant writes at once: nothing can have a newer
				// token yet, so the store must take it.
				if !stores[res].write(lk.Token()) {
					freshRejected.Add(1)
				}
				grants.Add(1)
				if requestedAfterKill {
					if afterKill.Add(1) == 1 {
						firstAfter.Store(int64(time.Since(killedAt)))
					}
				}
				if wait.Sleep(lk.Context(), time.Duration(rng.IntN(2000))*time.Microsecond) != nil {
					lost.Add(1)
				}
				// The last write before letting go: rejected only when a
				// newer holder has written meanwhile (a lease lost).
				if !stores[res].write(lk.Token()) {
					lateRejd.Add(1)
				}
				_ = lk.Release(context.WithoutCancel(ctx))
			}
		})
	}
	waitFor(t, 30*time.Second, fmt.Sprint(before, " grants before the kill"), func() bool { return grants.Load() >= before })
	killedAt = time.Now()
	old := f.KillMaster(t)
	killed.Store(true)
	next := f.WaitFailover(t, old)
	failedOver := time.Since(killedAt)
	wg.Wait()

	if n := afterKill.Load(); n < after {
		t.Fatalf("%d grants requested after the kill within the budget, want %d", n, after)
	}
	if n := freshRejected.Load(); n > 0 {
		t.Fatalf("%d fresh grants were rejected by the fenced store: a token went backwards", n)
	}
	// Every Locker resubscribed to its wake-up channel on the new master.
	nc := next.Client(t)
	for i, l := range lockers {
		waitFor(t, 10*time.Second, fmt.Sprint("locker ", i, " to subscribe on the new master"), func() bool {
			n, err := nc.PubSubNumSub(t.Context(), l.channel).Result()
			return err == nil && n[l.channel] == 1
		})
	}
	var accepted, rejected int
	for _, s := range stores {
		accepted += len(s.accepted)
		rejected += s.rejected
	}
	t.Logf("grants %d (%d after the kill, the first %s after it); Sentinels agreed on the new master %s after the kill; "+
		"acquires failed while failing over %d; leases lost %d; writes accepted %d, rejected %d (all late writes of lost leases)",
		grants.Load(), afterKill.Load(), time.Duration(firstAfter.Load()).Round(time.Millisecond), failedOver.Round(time.Millisecond),
		failedAcquires.Load(), lost.Load(), accepted, rejected)
}

// TestFailoverLosesAGrant: the master acknowledges a grant it never
// replicates, then dies. The promoted replica has the lock free, so a second
// holder is granted while the first still believes it holds: the overlap
// async replication allows, until the first holder's next refresh finds the
// lock not its own. Fencing keeps the store safe: the second grant's token is
// above the lost one (token = max(last+1, server µs), and the replica never
// saw the last), the second holder's writes are accepted and the first
// holder's late write is rejected.
func TestFailoverLosesAGrant(t *testing.T) {
	f := redistest.StartFailover(t)
	cfg := failoverConfig()
	// A lease that outlasts the failover: the first holder keeps believing
	// it holds, retrying its refresh every TTL/10, until the new master
	// answers that the lock is not its own.
	cfg.TTL = 3 * time.Second
	first := newLocker(t, f.Client(t), cfg)
	second := newLocker(t, f.Client(t), cfg)
	ctx := t.Context()
	store := &fencedStore{}

	// A grant the replica has, so that the new master has a last token.
	lk, err := first.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	replicated := lk.Token()
	mustRelease(t, lk)
	// The owner hash (holder, token) as the master and the replica have it.
	owner := first.keys("n")[0]
	mc, rc := f.Servers[0].Client(t), f.Servers[1].Client(t)
	inSync := func() bool {
		m, r := mc.HGetAll(ctx, owner).Val(), rc.HGetAll(ctx, owner).Val()
		return len(m) > 0 && maps.Equal(m, r)
	}
	waitFor(t, 5*time.Second, "the replica to have the first grant", inSync)

	f.CutReplication(t)
	held, err := first.Acquire(ctx, "n", nil)
	if err != nil {
		t.Fatal(err)
	}
	var lostAt atomic.Int64
	context.AfterFunc(held.Context(), func() { lostAt.Store(time.Now().UnixNano()) })
	if !store.write(held.Token()) {
		t.Fatalf("store rejected the holder's token %d", held.Token())
	}
	if inSync() {
		t.Fatal("the replica has the second grant: replication was not cut")
	}

	old := f.KillMaster(t)
	f.WaitFailover(t, old)
	granted, err := second.Acquire(ctx, "n", &Options{Mode: Patient})
	if err != nil {
		t.Fatal(err)
	}
	grantedAt := time.Now()
	defer mustRelease(t, granted)
	if granted.Token() <= held.Token() {
		t.Fatalf("token %d granted by the new master, want above the lost grant's %d", granted.Token(), held.Token())
	}
	if !store.write(granted.Token()) {
		t.Fatalf("store rejected the new holder's token %d", granted.Token())
	}
	// The first holder learns it lost the lock at its next refresh (or at
	// its lease's end if Redis was unreachable until then); its late write is
	// rejected either way.
	waitLost(t, held, cfg.TTL, "the holder of the lost grant")
	waitFor(t, time.Second, "the loss to be recorded", func() bool { return lostAt.Load() != 0 })
	overlap := time.Unix(0, lostAt.Load()).Sub(grantedAt)
	if store.write(held.Token()) {
		t.Fatalf("store accepted the lost grant's token %d after %d", held.Token(), granted.Token())
	}
	t.Logf("tokens: replicated %d, lost %d, after the failover %d; the lost holder was told %s after the new grant (negative: before it; TTL %s)",
		replicated, held.Token(), granted.Token(), overlap.Round(time.Millisecond), cfg.TTL)
}

// TestMinReplicasToWrite: with min-replicas-to-write 1, a master cut off
// from its replica refuses the lock's scripts (NOREPLICAS) instead of
// granting what a failover would lose; a holder that cannot refresh learns
// it lost the lock before its lease could end.
func TestMinReplicasToWrite(t *testing.T) {
	f := redistest.StartFailover(t, redistest.WithServerArgs("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"))
	cfg := failoverConfig()
	l := newLocker(t, f.Client(t), cfg)
	ctx := t.Context()
	held, err := l.Acquire(ctx, "held", nil)
	if err != nil {
		t.Fatalf("Acquire with the replica in sync: %v", err)
	}
	f.CutReplication(t)
	if lk, err := l.Acquire(ctx, "n", nil); err == nil || !strings.Contains(err.Error(), "NOREPLICAS") {
		t.Fatalf("Acquire without a replica = %v, %v; want a NOREPLICAS error", lk, err)
	}
	waitLost(t, held, cfg.TTL, "the holder that cannot refresh")
}

// waitLost fails t unless lk's context ends with cause ErrLost within d.
func waitLost(t *testing.T, lk *Lock, d time.Duration, who string) {
	t.Helper()
	select {
	case <-lk.Context().Done():
	case <-time.After(d):
		t.Fatalf("%s was not told it lost the lock within %s", who, d)
	}
	if cause := context.Cause(lk.Context()); !errors.Is(cause, ErrLost) {
		t.Fatalf("%s: cause = %v, want ErrLost", who, cause)
	}
}

// TestFailoverClientNeedsContextTimeouts: a go-redis failover client is a
// *redis.Client, and New holds it to the same rule as any other.
func TestFailoverClientNeedsContextTimeouts(t *testing.T) {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:26379"}})
	defer c.Close()
	if _, err := New(t.Context(), c, Config{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("New with a failover client without ContextTimeoutEnabled = %v, want ErrInvalid", err)
	}
}
