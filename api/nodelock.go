package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// lockedWorkTimeout bounds what the API does while it holds a node's lock.
const lockedWorkTimeout = 10 * time.Second

// lockNode takes a node's lock in standard mode, as Ironic's API-side
// actions do: a few attempts, then 409 NodeLocked naming the holder.
func (s *Server) lockNode(ctx context.Context, uuid, purpose string) (*lock.Lock, error) {
	lk, err := s.deps.Locks.Acquire(ctx, uuid, &lock.Options{
		Mode: lock.Standard, Purpose: purpose,
		Attempts: s.cfg.LockAttempts, Interval: s.cfg.LockInterval,
	})
	if err == nil {
		return lk, nil
	}
	return s.lockErr(ctx, uuid, err)
}

// lockErr maps a failed Acquire onto the API's errors.
func (s *Server) lockErr(ctx context.Context, uuid string, err error) (*lock.Lock, error) {
	switch {
	case errors.Is(err, lock.ErrLocked):
		return nil, err
	case errors.Is(err, lock.ErrInvalid):
		return nil, badRequest("%v", err)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("api: lock %s: %w", uuid, context.Cause(ctx))
	}
	return nil, unavailable("node lock (Redis)", err)
}

// lockNodeInLine takes a node's lock waiting in line (patient mode), for
// as long as standard mode would try (LockAttempts × LockInterval), then
// answers 409 NodeLocked as standard mode does. Standard-mode holders that
// come and go (a console, heartbeats) never barge past a waiter, so they
// cannot starve a request that waits in line: the agent's lookup waits so.
func (s *Server) lockNodeInLine(ctx context.Context, uuid, purpose string) (*lock.Lock, error) {
	wctx, cancel := context.WithTimeout(ctx, time.Duration(max(s.cfg.LockAttempts, 1))*s.cfg.LockInterval)
	defer cancel()
	lk, err := s.deps.Locks.Acquire(wctx, uuid, &lock.Options{Mode: lock.Patient, Purpose: purpose})
	switch {
	case err == nil:
		return lk, nil
	case ctx.Err() == nil && wctx.Err() != nil:
		// Name the holder, as standard mode's refusal does.
		locked := &lock.LockedError{Resource: uuid}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.LockViewTimeout)
		defer cancel()
		if snap, serr := s.deps.Locks.Snapshot(sctx, uuid); serr == nil {
			locked.Holder, locked.Purpose = snap.Holder, snap.Purpose
		}
		return nil, fmt.Errorf("api: lock %s: %w", uuid, locked)
	}
	return s.lockErr(ctx, uuid, err)
}

// release gives a lock back, on a context of its own: a client that hung up
// must not leave the lock to expire.
func (s *Server) release(ctx context.Context, lk *lock.Lock) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.LockViewTimeout)
	defer cancel()
	if err := lk.Release(ctx); err != nil {
		s.log.WarnContext(ctx, "releasing a node lock failed; it expires with its lease", "node", lk.Resource(), "err", err)
	}
}

// underLock runs write holding the node's lock, then releases it: every
// write of a node or of its ports, as Ironic's conductor takes the node's
// lock for each (409 NodeLocked naming the holder when another holds it).
// write gets the lock's fencing token, to write the node with, and a
// context the client cannot cancel (a write is not left half done) but
// losing the lock does.
func (s *Server) underLock(ctx context.Context, uuid, purpose string, write func(ctx context.Context, fence uint64) error) error {
	return s.underLockWith(ctx, s.lockNode, uuid, purpose, write)
}

// underLockWith is underLock taking the lock with take.
func (s *Server) underLockWith(ctx context.Context, take func(ctx context.Context, uuid, purpose string) (*lock.Lock, error),
	uuid, purpose string, write func(ctx context.Context, fence uint64) error) error {
	lk, err := take(ctx, uuid, purpose)
	if err != nil {
		return err
	}
	defer s.release(ctx, lk)
	wctx, cancel := context.WithTimeout(lk.Context(), lockedWorkTimeout)
	defer cancel()
	return write(wctx, lk.Token()) //nolint:contextcheck // the write runs on the lock's context: losing the lock cancels it, the client hanging up does not
}

// portWrite runs write, a write of one of node's ports, under the node's
// lock (underLock). Port records carry no fence, so the node is written
// with the lock's token first, nothing else changed: that fails with
// transport.ErrStaleFence if a newer holder has written the node, and
// raises its fence so that an older holder's writes fail from then on. The
// port write itself is cancelled if the lock is lost.
func (s *Server) portWrite(ctx context.Context, node, purpose string, write func(ctx context.Context) error) error {
	return s.underLock(ctx, node, purpose, func(ctx context.Context, fence uint64) error {
		_, err := s.deps.Nodes.UpdateNode(ctx, node, fence, func(*wire.Node) error { return nil })
		if wire.CodeOf(err) == wire.CodeNotFound {
			return nodeNotFound(node)
		}
		if err != nil {
			return err
		}
		return write(ctx)
	})
}

// forgetLock deletes a deleted node's lock keys from Redis, unless someone
// took the lock or joined its line since the delete released it (they will
// find the node gone). Best effort, on a context of its own: a key left
// behind costs memory, not correctness.
func (s *Server) forgetLock(ctx context.Context, uuid string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.LockViewTimeout)
	defer cancel()
	forgot, err := s.deps.Locks.Forget(ctx, uuid)
	switch {
	case err != nil:
		s.log.WarnContext(ctx, "forgetting a deleted node's lock failed; its keys stay in Redis", "node", uuid, "err", err)
	case !forgot:
		s.log.DebugContext(ctx, "a deleted node's lock is held or waited for; its keys stay", "node", uuid)
	}
}
