package lock

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrLocked is returned by a standard-mode Acquire that did not get the
	// lock within its attempts. The error is a *LockedError naming the holder.
	ErrLocked = errors.New("lock: resource is locked")
	// ErrLost is the cause of a held lock's context when its lease could not
	// be kept (refresh failed, or another owner took over after expiry).
	ErrLost = errors.New("lock: lease lost")
	// ErrReleased is the cause of a lock's context after Release or Handoff.
	ErrReleased = errors.New("lock: released")
	// ErrNotHeld is returned by Release, Handoff and Refresh when the caller
	// no longer owns the lock.
	ErrNotHeld = errors.New("lock: not held by this owner")
	// ErrTicketClaimed is returned when a ticket was already claimed by
	// another acquirer that still holds the lock (or waits in line with
	// it): a task delivered twice claims its ticket once.
	ErrTicketClaimed = errors.New("lock: ticket already claimed")
	// ErrTicketUsed is returned, at once and in either mode, when a ticket
	// was claimed and its claimer has since released the lock or handed it
	// on (within Config.TicketMemory): the task that carried it was
	// delivered again after its first copy finished with the lock. A
	// consumer that releases only once its work is done can take it as
	// "done" and acknowledge the task. A claimer whose lease lapsed did not
	// spend its ticket: the work may be unfinished, and the ticket can be
	// claimed again.
	ErrTicketUsed = errors.New("lock: ticket already used")
	// ErrInvalid wraps every bad-input error (empty or oversized resource
	// names, non-positive durations, bad tickets).
	ErrInvalid = errors.New("lock: invalid argument")
	// ErrClosed is returned by a Locker after Close.
	ErrClosed = errors.New("lock: locker closed")
)

// LockedError says who holds a resource a standard-mode Acquire wanted.
type LockedError struct {
	Resource string
	// Holder and Purpose are what the current owner said when it acquired
	// (empty when the lock is free but others wait in line ahead).
	Holder  string
	Purpose string
	// Waiting is the number of waiters in line ahead, when known.
	Waiting int
	// Attempts is how many times the caller tried.
	Attempts int
	// Waited is how long the caller tried for.
	Waited time.Duration
}

func (e *LockedError) Error() string {
	who := e.Holder
	if who == "" {
		who = "a waiter in line"
	}
	msg := fmt.Sprintf("lock: %s is locked by %s", e.Resource, who)
	if e.Purpose != "" {
		msg += " (" + e.Purpose + ")"
	}
	return msg + fmt.Sprintf(" after %d attempts over %s", e.Attempts, e.Waited.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
