package lock

// ChangeKind says how a Locker changed a lock.
type ChangeKind int

// Change kinds, reported by the Locker that made the change.
const (
	// Acquired: this Locker was granted the lock (a fresh acquire, a claim
	// of a handed-off or reserved ticket, or a waiter reaching the front).
	Acquired ChangeKind = iota + 1
	// Queued: a patient Acquire joined the line (once per Acquire).
	Queued
	// Left: an Acquire gave up its place in line (its context ended, or a
	// grant came back too late to hold and was passed on).
	Left
	// Released: the holder released or yielded the lock; if someone waited,
	// the lock passed to the head of the line in the same script (Passed).
	Released
	// HandedOff: the holder handed the lock to a ticket (Lock.Handoff).
	HandedOff
)

func (k ChangeKind) String() string {
	switch k {
	case Acquired:
		return "acquired"
	case Queued:
		return "queued"
	case Left:
		return "left"
	case Released:
		return "released"
	case HandedOff:
		return "handed-off"
	}
	return "unknown"
}

// Change is one change a Locker made to a lock, reported to
// Config.OnChange after the script that made it answered.
type Change struct {
	Kind     ChangeKind
	Resource string
	// Holder, Purpose and Mode are those of the Acquire that made the
	// change (for Released and HandedOff, of the Acquire that took the lock).
	Holder  string
	Purpose string
	Mode    Mode
	// Token is the fencing token of the grant (Acquired) or of the new
	// grant to the ticket (HandedOff); zero otherwise.
	Token uint64
	// Passed is true for a Released lock that went at once to the head of
	// the line.
	Passed bool
}

// notify reports c to Config.OnChange, if set. It is called outside every
// script and every mutex of the Locker, after the change is made.
func (l *Locker) notify(c Change) {
	if l.cfg.OnChange != nil {
		l.cfg.OnChange(c)
	}
}
