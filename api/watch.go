package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Events is the EVENTS stream GET /v1/watch follows (*transport.Bus).
type Events interface {
	SubscribeEvents(ctx context.Context, sub transport.EventSubscription, fn func(wire.Event)) error
}

// watchPing is how often an idle watch stream sends a comment, so that
// proxies and the browser see the connection alive.
const watchPing = 15 * time.Second

// watchReplay is how far before its first read of the locks a watch stream
// follows the events from: more than the time its subscription takes to
// start, and than the clocks of the API and NATS differ by.
const watchReplay = 2 * time.Second

// watch is GET /v1/watch, the web console's live feed, as Server-Sent
// Events (text/event-stream):
//
//   - "locks": once, at the start, every node held or waited for (the lock
//     view of GET /v1/locks) with the server's time, the page's starting
//     point;
//   - "event": each event of the EVENTS stream from then on, as published
//     (provision and power state changes, task outcomes, and the lock's:
//     acquired, queued, left, released, handoff; wire.Event);
//   - "lock": a node's lock view (holder, purpose, since, line) whenever it
//     changed, with the server's time; "unlock": {"node"} when nobody holds
//     or waits for it any more.
//
// The lock view follows the events: every process publishes the changes
// its Locker makes (internal/dispatch.LockEvents), and the stream reads a
// node's lock again when an event names it. The events are followed from
// a little before the first read (watchReplay), so that a change made
// while the subscription starts is not missed. A lease that lapses is
// witnessed by no process, and a lock event can be dropped under load, so
// the stream also reads the whole lock index every Config.WatchInterval
// (30 s by default) and sends what changed: a resync, not the feed.
func (s *Server) watch(c *gin.Context) {
	ctx, cancel := context.WithCancel(c.Request.Context())
	defer cancel()
	// Shutdown does not cancel requests: end the stream when it starts.
	defer context.AfterFunc(s.closing, cancel)()

	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	evs := make(chan wire.Event, 64)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	if s.deps.Events != nil {
		g.Go(func() error {
			err := s.deps.Events.SubscribeEvents(gctx, transport.EventSubscription{Follow: true, Since: start.Add(-watchReplay)}, func(ev wire.Event) {
				select {
				case evs <- ev:
				case <-gctx.Done():
				}
			})
			if err != nil && gctx.Err() == nil {
				return fmt.Errorf("api: watch: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer cancel() // a write failed or the stream ended: stop following events too
		if err := s.streamWatch(gctx, w, start, evs); !errors.Is(err, errGone) {
			return err
		}
		return nil // the client went away: the stream is over, not failed
	})
	if err := g.Wait(); err != nil {
		s.log.WarnContext(ctx, "watch stream ended", "request_id", c.GetString(ctxRequestID), "err", err)
	}
}

// errGone ends a watch stream whose client went away.
var errGone = errors.New("api: watch: the client went away")

// watchWriter is where a watch stream's messages go.
type watchWriter interface {
	Write(p []byte) (int, error)
	Flush()
}

// streamWatch writes the stream until ctx ends or a write fails. Events
// from before start (replayed, see watchReplay) only make it read their
// node's lock: the page saw them before, or never needs them.
func (s *Server) streamWatch(ctx context.Context, w watchWriter, start time.Time, evs <-chan wire.Event) error {
	send := func(name string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("api: watch %s: %w", name, err)
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data); err != nil {
			return errGone
		}
		w.Flush()
		return nil
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return errGone
	}
	seen := map[string]string{} // node → its lock's lockKey as last sent
	summary := func() ([]lock.Snapshot, error) {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.LockViewTimeout)
		defer cancel()
		return s.deps.Locks.Summary(rctx)
	}
	snaps, err := summary()
	if err != nil {
		return fmt.Errorf("api: watch: %w", err)
	}
	views := make([]lockView, 0, len(snaps))
	for _, sn := range snaps {
		seen[sn.Resource] = lockKey(sn)
		views = append(views, renderLock(sn))
	}
	if err := send("locks", map[string]any{"at": ironicTime(time.Now()), "locks": views}); err != nil {
		return err
	}
	// changed sends sn if it differs from what was last sent.
	changed := func(sn lock.Snapshot) error {
		k, had := seen[sn.Resource]
		switch {
		case sn.Empty() && had:
			delete(seen, sn.Resource)
			return send("unlock", map[string]string{"node": sn.Resource})
		case sn.Empty(), k == lockKey(sn):
			return nil
		}
		seen[sn.Resource] = lockKey(sn)
		return send("lock", map[string]any{"at": ironicTime(time.Now()), "lock": renderLock(sn)})
	}
	tick := time.NewTicker(s.cfg.WatchInterval)
	defer tick.Stop()
	ping := time.NewTicker(watchPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return errGone
			}
			w.Flush()
		case ev := <-evs:
			if !ev.Time.Before(start) {
				if err := send("event", ev); err != nil {
					return err
				}
			}
			if ev.Node == "" {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, s.cfg.LockViewTimeout)
			sn, err := s.deps.Locks.Snapshot(rctx, ev.Node)
			cancel()
			if err != nil {
				continue // the next event naming it, or the resync, reads it again
			}
			if err := changed(sn); err != nil {
				return err
			}
		case <-tick.C: // resync: what no event announced
			snaps, err := summary()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.DebugContext(ctx, "watch: reading the lock index failed; trying again", "err", err)
				continue
			}
			now := make(map[string]bool, len(snaps))
			for _, sn := range snaps {
				now[sn.Resource] = true
				if err := changed(sn); err != nil {
					return err
				}
			}
			for node := range seen {
				if !now[node] {
					if err := changed(lock.Snapshot{Resource: node}); err != nil {
						return err
					}
				}
			}
		}
	}
}

// lockKey is what makes a lock's view change: its holder and its line, not
// the waits growing while nothing happens (the page ages those itself).
func lockKey(sn lock.Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%t|%s|%s|%s|%t|%d|%d", sn.Held, sn.Holder, sn.Purpose, sn.Mode, sn.Claimed, sn.Token, sn.Since.UnixNano())
	for _, w := range sn.Line {
		fmt.Fprintf(&b, "|%s/%s/%s/%t/%d", w.Holder, w.Purpose, w.Mode, w.Reserved, w.Since.UnixNano())
	}
	return b.String()
}
