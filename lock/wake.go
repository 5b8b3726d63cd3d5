package lock

import (
	"strconv"
	"strings"
	"time"
)

// wakeUp is what a waiter is told by its process's wake-up subscription.
// The zero value is a prompt to run acquire again (the subscription
// reconnected, or a message from an older version named only the ticket).
// A grant names the claimer it was made to, the acquire run (n) whose lease
// the grant keeps, and the grant's fencing token: the waiter may take it as
// its grant without a round trip, but only on the conditions of
// attempt.grantFrom, because a message can be stale.
type wakeUp struct {
	grant   bool
	claimer string
	n       uint64
	token   uint64
}

// parseWake reads a wake-up message: "ticket claimer n token" from a grant
// (lua/lib.lua, wake), or the ticket alone. Anything it cannot read whole
// is a prompt to re-check the ticket.
func parseWake(payload string) (ticket string, w wakeUp) {
	f := strings.Fields(payload)
	if len(f) == 0 {
		return "", wakeUp{}
	}
	if len(f) != 4 {
		return f[0], wakeUp{}
	}
	n, err1 := strconv.ParseUint(f[2], 10, 64)
	tok, err2 := strconv.ParseUint(f[3], 10, 64)
	if err1 != nil || err2 != nil || n == 0 || tok == 0 {
		return f[0], wakeUp{}
	}
	return f[0], wakeUp{grant: true, claimer: f[1], n: n, token: tok}
}

// post leaves w for the waiter behind ch, whose buffer holds one wake-up.
// Wake-ups coalesce: a pending one means the waiter will act after w was
// sent, and acting on a grant or running acquire answers a prompt too, so
// a prompt never displaces what is pending; a grant displaces it, being
// the newer news (a grant's message is worth keeping: it saves the
// waiter's round trip). The caller holds the Locker's mu, so nobody else
// fills the buffer between the drain and the send.
func post(ch chan wakeUp, w wakeUp) {
	if w.grant {
		select {
		case <-ch:
		default:
		}
	}
	select {
	case ch <- w:
	default:
	}
}

// runs are the acquire runs of one patient attempt: each is numbered (the
// n the script keeps in the waiter's record), and its sending time is kept
// until a later run has been answered, for the grant that may name it.
type runs struct {
	last uint64               // the number of the last run sent
	sent map[uint64]time.Time // run → when it was sent, for runs ≥ floor
	// floor is the number of the last run that was answered: a grant
	// made before it would have been its answer (or had lapsed by then),
	// so a message naming an earlier run is stale.
	floor uint64
}

// maxRuns bounds the runs kept unanswered (a waiter retrying while Redis
// is unreachable): a grant naming one dropped is confirmed by a run
// instead of taken, which is always safe.
const maxRuns = 64

// next numbers a run sent now.
func (r *runs) next(now time.Time) uint64 {
	if r.sent == nil {
		r.sent = make(map[uint64]time.Time)
	}
	r.last++
	r.sent[r.last] = now
	if len(r.sent) > maxRuns {
		delete(r.sent, r.last-maxRuns)
	}
	return r.last
}

// answered records that run n was answered: no grant can name an earlier one.
func (r *runs) answered(n uint64) {
	for k := range r.sent {
		if k < n {
			delete(r.sent, k)
		}
	}
	r.floor = max(r.floor, n)
}

// grantFrom is the lease a grant naming run n started from — when that run
// was sent, which is before the server renewed the waiter's lease — and
// whether the message may be taken as a grant at all: n is a run this
// attempt sent, not older than the last one answered.
func (r *runs) grantFrom(n uint64) (time.Time, bool) {
	if n < r.floor || n > r.last {
		return time.Time{}, false
	}
	t, ok := r.sent[n]
	return t, ok
}
