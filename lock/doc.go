// Package lock is ironfleet's node lock on Redis: a fair line per resource,
// a direct handoff of ownership that nothing can race, and fencing tokens.
//
// # Why
//
// Ironic passes a node from one step of a deploy to the next by releasing
// its lock and sending the next task; whatever grabs the lock in between (a
// serial console, a heartbeat) wins, and after three one-second retries the
// next step gives up, leaving the node in DEPLOYING. This package makes that
// handoff structurally race-free and every wait fair and bounded.
//
// # Use
//
//	l, _ := lock.New(ctx, redisClient, lock.Config{})        // one per process
//	lk, err := l.Acquire(ctx, nodeID, &lock.Options{Purpose: "power"})
//	if errors.Is(err, lock.ErrLocked) { … }                  // 409 NodeLocked
//	defer lk.Release(ctx)
//	doWork(lk.Context(), lk.Token())                         // cancelled with ErrLost on loss
//
// Modes: Standard (Ironic's few attempts at a fixed interval, then a
// *LockedError naming the holder; it never joins the line and never barges
// past it) and Patient (waits in the fair line until granted or ctx ends).
//
// Handoff: the holder of a finished step publishes the next task carrying a
// fresh ticket (NewTicket) and calls Lock.Handoff(ctx, ticket, claim). The
// consumer of that task acquires with Options.Ticket. Whichever comes first,
// nobody else can take the lock in between: if the consumer is already
// waiting in line with the ticket, the handoff pulls it to the front and
// wakes it; otherwise the ticket owns the lock, unclaimed, for at most
// claim. A second claim of the same ticket (the task delivered twice) gets
// ErrTicketClaimed while the first claimer holds the lock or waits with it,
// and ErrTicketUsed, at once and without waiting in line, once that
// claimer has released the lock or handed it on (see Used tickets below).
// Reserve queues a ticket at the back of the line now, to be claimed later,
// so that tasks issued in order take the lock in order.
//
// # Protocol
//
// Each resource R has four keys sharing the hash tag {R}, so one resource
// lives in one Redis Cluster slot:
//
//	<prefix>:{R}:owner    hash: ticket, claimer, token, since, expiry, holder, purpose, mode
//	<prefix>:{R}:line     list of waiting tickets, first in line first
//	<prefix>:{R}:waiters  hash ticket → {holder, purpose, joined, claimer, wake channel, ttl, lease expiry, run}
//	<prefix>:{R}:used     zset spent ticket → until when it is remembered (ms, server clock)
//	<prefix>:index        zset of resources touched (for Summary, no SCAN)
//
// The owner hash is deleted only by Forget, for a resource gone for good (a
// deleted node) that nobody holds or waits for: otherwise a free lock has an
// empty ticket, and the token field keeps the last fencing token granted. The line and the
// waiters hash hold the same tickets and expire together, a grace period
// after the longest lease in them.
//
// Every change is one Lua script (lua/*.lua, sharing lua/lib.lua), run by
// EVALSHA and loaded again on NOSCRIPT. Each script reads the owner once and
// first evicts it if its lease ran out by the server's clock. Dead waiters
// need no sweep: one in the middle of the line blocks nobody, and each is
// dropped, once, when it reaches the front. Then:
//
//   - acquire: grant if the caller's ticket owns the lock (a claim, or a
//     retry), or if the lock is free and the first live waiter is the
//     caller or nobody waits; if the lock is free while others wait, pass it
//     to the head first; otherwise join the line or renew the caller's place
//     in it (patient) or report the holder (standard).
//   - release: only the owner; ownership passes to the first live waiter
//     inside the script, with the lease that waiter already has, and its
//     process is told on its wake channel (see Wake-ups) — the lock is
//     never free while someone waits.
//   - handoff: only the owner; ownership passes to the ticket.
//   - reserve, refresh (the holder's lease), leave (a waiter giving up, or
//     passing on a grant it will not take).
//
// Used tickets: release and handoff spend the owner's ticket when the
// caller presented it (Options.Ticket; a fresh Acquire's own ticket is
// never presented again): it goes into the used set until
// Config.TicketMemory (default 10 minutes, never less than ClaimTimeout)
// from then, by the server's clock. acquire refuses a presented ticket
// found there with ErrTicketUsed before anything else but a grant it
// already owns, so a redelivered task learns at once that its first copy
// finished with the lock. Only letting go spends: a claimer whose lease
// lapsed (it died or lost Redis, maybe mid-work) or a waiter that gave up
// spends nothing, and the task's next copy claims the ticket again and
// redoes the work. Each spend first drops the entries past their time, and
// the key expires with its last entry, so the set holds only the tickets
// spent within one window. Past the window, or if Redis loses its data, a
// spent ticket is a fresh one again.
//
// Wake-ups: each Locker subscribes once, at New, to its own channel and
// waits for the confirmation; a grant publishes "ticket claimer n token"
// there, so exactly one process gets each message and only the granted
// waiter acts. n names the waiter's acquire run whose lease the grant
// keeps: every acquire run a waiter sends is numbered, the script keeps
// the number of the run that last renewed the waiter's lease in its
// record, and a grant passes that lease on unchanged. The waiter holds the
// lock on reading the message — no round trip — when it names this
// Acquire's claimer and a run it sent, no older than the last run it had
// an answer to, and at least half of the lease counted from that run's
// sending is left; it counts its lease from that sending, as it would from
// the sending of an acquire whose reply granted it. Otherwise the message
// only makes it run acquire again, and it holds the lock when that run
// finds its ticket owning it (renewing the lease from then). A message can
// be stale — while the waiter's commands were failing, or its process was
// stopped, the grant may have lapsed and gone to the next waiter — but a
// lapsed grant names a run whose lease, counted from its sending, ended no
// later than on the server, so it is never taken. Wake-ups coalesce (a
// waiter keeps the newest grant, and a prompt never displaces one), so
// none is lost to a full buffer. Pub/sub is fire-and-forget, so a
// waiter also re-runs acquire on a fallback timer (Config.Fallback, 1s by
// default, but never more than a third of the waiter's own lease —
// Options.TTL when given — since the re-run is what renews its place),
// right when the owner's lease would end if it is at the head, and
// whenever the subscription reconnects. A grant whose reply comes back
// later than the lease the holder could count on (a stalled process) is
// confirmed again rather than returned.
//
// Fencing: a token is max(last+1, server time in µs), the last being kept
// in the owner hash, so tokens strictly increase per resource even after a
// restart that lost it — assuming Redis's clock is not set back. Stores
// must reject writes whose token is below the last they accepted.
//
// Leases: holders renew every third of their own lease (Options.TTL or
// Config.TTL). A holder counts its lease from when it sent the acquire that
// granted it (the server started the lease later) and cancels its Context
// with cause ErrLost a margin (TTL/10) before that lease could end when
// renewals keep failing.
//
// Observing: Config.OnChange, when set, is told of each change a Locker
// makes — granted, queued (once per patient Acquire), left, released,
// handed off — after the script that made it answered, on the caller's
// goroutine, outside every script and mutex. It must not block: it is on
// the lock's path. It is what lets a process publish lock events (ironfleet
// puts them on its EVENTS stream) without the lock knowing any bus. It sees
// only what this process did: a lease that lapsed, or another process's
// changes, are reported by nobody here.
//
// # Guarantees and what they assume
//
// Mutual exclusion holds by Redis's clock while Redis keeps its data; if it
// restarts without persistence (or fails over losing writes), two processes
// may both believe they hold a lock until the older one's next renewal —
// fencing tokens are what keep their writes apart then. Run Redis with AOF
// (see deployments/). The client must enable go-redis's
// ContextTimeoutEnabled so that no call outlives its context; New checks.
//
// See README.md in this directory for the invariants, the faults tested and
// the benchmark.
package lock
