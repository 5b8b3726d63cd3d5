// Package dispatch owns the one protocol ironfleet exists for: handing a
// node from the process that holds its lock to the task that continues the
// work, so that nothing can take the lock in between.
//
// A dispatch runs, under the node's lock:
//
//  1. the first move: the state change the task starts with (available →
//     deploying for a deploy, wait call-back → deploying when the agent
//     calls back), written with the lock's fencing token and announced as a
//     node.provision_state event. The task records it (wire.Task.FirstMove)
//     so that its consumer goes on from there instead of guessing;
//  2. publish: the task, carrying a fresh lock ticket, goes on the bus;
//  3. hand off: the lock passes to that ticket. The task's consumer claims
//     it (lock.Patient with the ticket) and finds itself the owner.
//
// Publish first, hand off second. If the process dies between the two, the
// task is on the bus and its consumer waits in line with the ticket: it
// gets the lock when this holder's lease expires, at most one lock TTL
// later. The other order would leave the lock owned by a ticket that no
// task carries until its claim timeout, and the node with no next step at
// all. A publish that fails undoes the first move, so the node is left as
// it was found and the caller can answer 503 (the API) or go back to
// waiting for the agent's next heartbeat (a conductor). A handoff that
// fails after the publish costs at most one lease, and is only logged.
//
// A write or publish whose answer is lost (a timeout in an overloaded
// process: the request may still be stored after it) is never taken for a
// failure. Each is made so that sending it again is harmless, and sent
// again until an answer says what happened: the first move writes the
// task's ID in the node (wire.Node.Dispatched) and makes no second change
// when it finds it there; a write sent again at the same revision either
// lands or finds the first copy landed; the task's ID is its message ID,
// so the bus stores it once; the undo undoes only its own task's move.
// When no answer comes within Config.SettleTimeout, the node may be left
// with a first move and no task: a retried request finds it (Unfinished)
// and dispatches it afresh, or, if nobody asks again, the conductors'
// recovery sweep fails the node; the task, if it was stored after all,
// finds its move taken over or undone and changes nothing.
//
// The API runs every user action through a Dispatcher; a conductor runs
// every continuation (continue_deploy, continue_clean) through one. Tasks
// that need no lock (agent heartbeats) are minted with wire.NewTask and
// published as they are.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Tasks is the task bus as a dispatcher uses it (*transport.Bus).
type Tasks interface {
	Publish(ctx context.Context, t wire.Task) (uint64, error)
	EmitEvent(ctx context.Context, ev wire.Event) error
}

// Nodes writes node records with a lock's fencing token (*transport.Inventory).
type Nodes interface {
	UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error)
}

// Lock is the held node lock a dispatch ends by handing off (*lock.Lock).
type Lock interface {
	Token() uint64
	Handoff(ctx context.Context, ticket string, claimTimeout time.Duration) (uint64, error)
	Release(ctx context.Context) error
}

// PassFunc publishes t on tasks and gives up lk to it: steps 2 and 3 of a
// dispatch. An error means t was not published.
type PassFunc func(ctx context.Context, tasks Tasks, lk Lock, t wire.Task) error

// Config holds a Dispatcher's settings; every zero value means the default.
type Config struct {
	// Source names who dispatches in the events it publishes (their
	// "conductor" field): a conductor's host; empty for the API.
	Source string
	// ClaimTimeout is how long a handed-off ticket may stay unclaimed
	// before the lock passes on; zero means the Locker's default.
	ClaimTimeout time.Duration
	// Pass replaces steps 2 and 3 (publish, hand off). Nil means ironfleet's
	// ticket handoff; ironfleet bench fleet sets it to measure the ways
	// Ironic hands a node on. Never set it in production.
	Pass PassFunc
	// SettleTimeout bounds how long a write or publish whose answer was
	// lost is sent again (settle); zero means settleTimeout. Keep it well
	// inside the task stream's dedup window.
	SettleTimeout time.Duration
	// Logger receives what cannot be returned (a handoff that failed after
	// the publish); nil means slog.Default().
	Logger *slog.Logger
}

// handoffTimeout bounds the handoff that follows a publish.
const handoffTimeout = 5 * time.Second

// settleTimeout is the default Config.SettleTimeout: how long a dispatch
// sends again a write or publish whose answer was lost; attemptTimeout
// bounds each send. settleTimeout stays well inside the task stream's
// dedup window (transport's DefaultDuplicates, 2 minutes), so that a
// publish sent again is stored once.
const (
	settleTimeout  = 30 * time.Second
	attemptTimeout = 10 * time.Second
)

// ErrNotPublished marks a dispatch whose task could not be published: the
// node is as it was found and the caller still holds its lock.
var ErrNotPublished = errors.New("dispatch: task not published")

// Dispatcher hands nodes to the tasks that continue their work.
type Dispatcher struct {
	tasks Tasks
	nodes Nodes
	cfg   Config
	log   *slog.Logger
}

// New returns a Dispatcher publishing on tasks and writing nodes.
func New(tasks Tasks, nodes Nodes, cfg Config) *Dispatcher {
	d := &Dispatcher{tasks: tasks, nodes: nodes, cfg: cfg, log: cfg.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.cfg.SettleTimeout <= 0 {
		d.cfg.SettleTimeout = settleTimeout
	}
	return d
}

// First is a dispatch's first move: what the publisher writes on the node,
// under its lock, before the task exists.
type First struct {
	// Move is the provision state change, nil for none (a power action
	// moves no state); Move.From must be the node's state as read under
	// the lock.
	Move *wire.Move
	// Set, when not nil, changes what else the move writes (the flow's
	// step, the conductor's name).
	Set func(*wire.Node)
	// Takes, when not empty, is the ID of the task whose first move the
	// node is already in (Unfinished): the dispatch takes that move over
	// for its own task instead of making it; Move.To must be the node's
	// state.
	Takes string
}

// Unfinished returns the first move of op that n is in, made for a task
// that, as far as the node shows, has not begun (the state and target the
// move left, no step): the move a retried request finds when the answer
// to the first was lost. Nil when there is none. Only the holder of n's
// lock can tell that task is not running (its consumer would hold the
// lock), so a dispatch that takes the move over (First.Takes) runs under
// it.
func Unfinished(n wire.Node, op wire.Operation) *wire.Dispatched {
	d := n.Dispatched
	if d == nil || d.Op != op || d.Move == nil || n.Step != "" ||
		n.ProvisionState != d.Move.To || n.TargetProvisionState != d.Move.Target {
		return nil
	}
	return d
}

// errNothingToUndo ends an undo that finds no move of its task to undo.
var errNothingToUndo = errors.New("dispatch: no first move of this task to undo")

// Dispatch hands node n, held under lk and read under it, to task t (made
// by wire.NewTask): it makes first (when not nil), publishes t with a fresh
// ticket and first's move recorded in it (both filled in t), and hands lk
// to that ticket. It returns the node as the first move left it.
//
// An error means t was not published, or its publish went unanswered for
// Config.SettleTimeout: lk is still held and the caller releases it. n is
// then as it was found (the first move undone), unless the move's own
// answer never came (the error is the move's): the node may then be left
// in the move, recording t, for a retry to take over (Unfinished) or the
// recovery sweep to fail. A t stored after all finds the node short of its
// move, or the move not its own, and changes nothing; whatever was waiting
// for t (an agent's heartbeat, a client's retry) asks again. Once t is
// published, Dispatch returns nil: lk is handed off, or, if the handoff
// failed, lapses to t's consumer at the end of its lease.
func (d *Dispatcher) Dispatch(ctx context.Context, lk Lock, n wire.Node, t *wire.Task, first *First) (wire.Node, error) {
	before := n
	if first != nil {
		moved, err := d.firstMove(ctx, lk, n, t, first)
		if err != nil {
			return n, fmt.Errorf("dispatch: first move of %s %s: %w", t.Op, n.UUID, err)
		}
		n = moved
		if m := first.Move; m != nil {
			move := *m
			t.FirstMove = &move
		}
	}
	t.Ticket = lock.NewTicket()
	pass := d.cfg.Pass
	if pass == nil {
		pass = d.publishThenHandoff
	}
	if err := pass(ctx, settling{d.tasks, d.cfg.SettleTimeout}, lk, *t); err != nil {
		d.log.WarnContext(ctx, "publishing a task failed", "node", t.Node, "task", t.ID, "op", t.Op, "err", err)
		if first != nil {
			d.undo(ctx, lk, before, t.ID)
		}
		return before, fmt.Errorf("%w: %s for %s: %w", ErrNotPublished, t.Op, t.Node, err)
	}
	if first != nil && first.Takes == "" && first.Move != nil && first.Move.From != first.Move.To {
		d.Event(ctx, d.moveEvent(*t, *first.Move, n.LastError))
	}
	return n, nil
}

// firstMove writes first on n for task t, recording t in the node, and
// returns the node as written. A write whose answer is lost is sent again
// (settle): a copy that finds t already recorded changes nothing more, so
// the move is made once whichever copy lands.
func (d *Dispatcher) firstMove(ctx context.Context, lk Lock, n wire.Node, t *wire.Task, first *First) (wire.Node, error) {
	m := first.Move
	switch {
	case first.Takes != "" && (m == nil || m.To != n.ProvisionState):
		return n, fmt.Errorf("dispatch: node %s is %s, not in the first move taken over", n.UUID, n.ProvisionState)
	case first.Takes == "" && m != nil && m.From != n.ProvisionState:
		return n, fmt.Errorf("dispatch: node %s is %s, not %s", n.UUID, n.ProvisionState, m.From)
	}
	rec := &wire.Dispatched{Task: t.ID, Op: t.Op}
	if m != nil {
		move := *m
		rec.Move = &move
	}
	var moved wire.Node
	err := settle(ctx, d.cfg.SettleTimeout, func(ctx context.Context) error {
		var err error
		moved, err = d.nodes.UpdateNode(ctx, n.UUID, lk.Token(), func(cur *wire.Node) error {
			if cur.Dispatched != nil && cur.Dispatched.Task == t.ID {
				return nil // an earlier copy of this write landed
			}
			if first.Takes != "" {
				if Unfinished(*cur, t.Op) == nil || cur.Dispatched.Task != first.Takes {
					return wire.Errorf(wire.CodeConflict, "node %s is no longer in task %s's first move", cur.UUID, first.Takes)
				}
				cur.Dispatched = rec
				return nil
			}
			if m != nil {
				if cur.ProvisionState != m.From {
					return wire.Errorf(wire.CodeConflict, "node %s is %s, not %s", cur.UUID, cur.ProvisionState, m.From)
				}
				cur.ProvisionState, cur.TargetProvisionState = m.To, m.Target
				cur.ProvisionUpdatedAt, cur.LastError = time.Now().UTC(), ""
			}
			if first.Set != nil {
				first.Set(cur)
			}
			cur.Dispatched = rec
			return nil
		})
		return err
	})
	return moved, err
}

// settle runs send until its answer says what happened: success, or an
// error other than wire.CodeUnavailable (the code of a timeout or a lost
// answer, after which the request may still be stored). Every send must be
// harmless to repeat. Sends run on a context of their own, each for at
// most attemptTimeout and all within `within`: once a write may be
// stored, finding out is owed whatever the caller's cancellation. A ctx
// already done sends nothing.
func settle(ctx context.Context, within time.Duration, send func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), within)
	defer cancel()
	pause := 50 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(sctx, attemptTimeout)
		err := send(actx)
		acancel()
		if err == nil || wire.CodeOf(err) != wire.CodeUnavailable {
			return err
		}
		if wait.Sleep(sctx, pause) != nil {
			return err
		}
		pause = min(2*pause, time.Second)
	}
}

// settling is the task bus with every task publish settled: a task's ID is
// its message ID, so a publish sent again is stored once. The publish is
// sent even when the caller's context has ended meanwhile (a first move
// that took the API's whole locked-work time to settle): once the move is
// made, publishing costs no more than undoing it, and moves the node on.
type settling struct {
	Tasks
	within time.Duration
}

func (s settling) Publish(ctx context.Context, t wire.Task) (uint64, error) {
	var seq uint64
	err := settle(context.WithoutCancel(ctx), s.within, func(ctx context.Context) error {
		var err error
		seq, err = s.Tasks.Publish(ctx, t)
		return err
	})
	return seq, err
}

// Request dispatches a user's operation op on node n, held under lk and
// read under it: provision.Accept re-validates it and names its first
// move, then Dispatch makes that move, publishes the task (params, by
// requestedBy) and hands lk to it. It returns the task published. Errors
// are Dispatch's, or Accept's refusal (nothing written, lk still held).
func (d *Dispatcher) Request(ctx context.Context, lk Lock, n wire.Node, op wire.Operation, requestedBy string, params json.RawMessage) (wire.Task, error) {
	move, err := provision.Accept(n, op)
	var takes string
	if err != nil {
		u := Unfinished(n, op)
		if u == nil {
			return wire.Task{}, err
		}
		// A retry of a request whose answer was lost: its task was never
		// published, or will find its move taken over and do nothing.
		move, takes = u.Move, u.Task
	}
	var f *First
	switch {
	case takes != "":
		f = &First{Move: move, Takes: takes}
	case move != nil:
		// A user's operation starts a flow of its own: the step of the
		// one it interrupts (wait call-back's wait_agent, for deleted)
		// no longer says where anything stands.
		f = &First{Move: move, Set: func(n *wire.Node) { n.Step = "" }}
	case op == wire.OpPower:
		// The node shows where its power is going from the moment the
		// request is accepted, as Ironic's conductor sets
		// target_power_state before its RPC returns: clients (nova's
		// _wait_for_power_state) wait for it to clear.
		var p wire.PowerParams
		if json.Unmarshal(params, &p) == nil && p.Target != "" {
			target := provision.PowerTarget(p.Target)
			f = &First{Set: func(n *wire.Node) { n.TargetPowerState = target }}
		}
	}
	t := wire.NewTask(op, n, requestedBy, params)
	if _, err := d.Dispatch(ctx, lk, n, &t, f); err != nil {
		return wire.Task{}, err
	}
	return t, nil
}

// publishThenHandoff is ironfleet's pass: publish, then hand off (see the
// package documentation for why in this order).
func (d *Dispatcher) publishThenHandoff(ctx context.Context, tasks Tasks, lk Lock, t wire.Task) error {
	if _, err := tasks.Publish(ctx, t); err != nil {
		return err
	}
	// The handoff ends the lock, and with it the lock's context, which may
	// be ctx itself: run it on a context of its own. Once the task is
	// published, the handoff is owed whatever the caller's cancellation.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handoffTimeout)
	defer cancel()
	tok, err := lk.Handoff(hctx, t.Ticket, d.cfg.ClaimTimeout)
	if err != nil {
		d.log.WarnContext(ctx, "lock handoff failed after publishing; the task gets the lock when this lease expires",
			"node", t.Node, "task", t.ID, "op", t.Op, "err", err)
		return nil
	}
	ev := wire.TaskEvent(wire.EventLockHandoff, t)
	ev.Message = fmt.Sprintf("lock handed to %s (fencing token %d)", t.Op, tok)
	d.Event(ctx, ev)
	return nil
}

// undo puts back the fields task's first move changed, as they were in
// before, if the node still shows that move. It is settled like the move
// (settle, on a context of its own: the publish it follows has often
// failed because ctx ran out), so that a node is not left in the first
// move's state with no task to take it further; one the undo cannot
// settle is found again by a retried request (Unfinished).
func (d *Dispatcher) undo(ctx context.Context, lk Lock, before wire.Node, task string) {
	err := settle(context.WithoutCancel(ctx), d.cfg.SettleTimeout, func(ctx context.Context) error {
		_, err := d.nodes.UpdateNode(ctx, before.UUID, lk.Token(), func(cur *wire.Node) error {
			if cur.Dispatched == nil || cur.Dispatched.Task != task {
				return errNothingToUndo
			}
			cur.ProvisionState, cur.TargetProvisionState = before.ProvisionState, before.TargetProvisionState
			cur.ProvisionUpdatedAt, cur.LastError, cur.Step = before.ProvisionUpdatedAt, before.LastError, before.Step
			cur.TargetPowerState, cur.Dispatched = before.TargetPowerState, before.Dispatched
			return nil
		})
		return err
	})
	if err != nil && !errors.Is(err, errNothingToUndo) {
		d.log.WarnContext(ctx, "undoing a first move after a failed publish", "node", before.UUID, "task", task, "err", err)
	}
}

func (d *Dispatcher) moveEvent(t wire.Task, m wire.Move, lastError string) wire.Event {
	ev := wire.TaskEvent(wire.EventProvisionState, t)
	ev.From, ev.To, ev.Message = string(m.From), string(m.To), lastError
	return ev
}

// Event publishes ev, stamped with this dispatcher's source, without
// waiting for the bus to store it (Tasks.EmitEvent: an event describes
// what already happened, and the work it describes goes on), on a context
// the caller's cancellation does not cut short. A failure is logged here,
// or by the bus when the store does not confirm it.
func (d *Dispatcher) Event(ctx context.Context, ev wire.Event) {
	ev.Conductor = d.cfg.Source
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.tasks.EmitEvent(ectx, ev); err != nil {
		d.log.WarnContext(ctx, "publishing event", "type", ev.Type, "node", ev.Node, "err", err)
	}
}
