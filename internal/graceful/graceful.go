// Package graceful runs an HTTP server for as long as its context lasts,
// then shuts it down gracefully: the one way every ironfleet HTTP server
// (the API, the agent's command API, metrics, image servers) stops.
package graceful

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// DefaultGrace is how long Serve waits for requests in flight when its
// grace is zero.
const DefaultGrace = 5 * time.Second

// Serve serves srv on l until ctx is done, then shuts srv down: it stops
// accepting, waits at most grace (zero means DefaultGrace) for the requests
// in flight, and then closes the connections still open (hung requests, and
// connections that never sent one). It returns nil once srv has stopped
// because ctx ended, or else the error that stopped srv.Serve first (srv is
// closed then). l is closed on return.
func Serve(ctx context.Context, srv *http.Server, l net.Listener, grace time.Duration) error {
	if grace <= 0 {
		grace = DefaultGrace
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if srv.Shutdown(sctx) != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
