package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/api"
)

// serve runs e's API with Serve (not httptest) on a fresh listener until
// the test ends, and returns its address.
func (e *env) serve(t *testing.T) string {
	t.Helper()
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "Serve", func(ctx context.Context) error { return e.srv.Serve(ctx, l) })
	return l.Addr().String()
}

// closedWithin reports whether the server closes conn (a read ends in EOF
// or a reset) within d, reading and discarding whatever comes first.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

// TestServerTimeouts: Serve drops a client that does not finish its
// request headers within ReadHeaderTimeout (slowloris) and closes a
// keep-alive connection idle for IdleTimeout.
func TestServerTimeouts(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.ReadHeaderTimeout = 100 * time.Millisecond
		c.IdleTimeout = 100 * time.Millisecond
	})
	addr := e.serve(t)
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		conn, err := new(net.Dialer).DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	t.Run("headers never finished", func(t *testing.T) {
		conn := dial(t)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(t, conn, 5*time.Second) {
			t.Errorf("a connection with unfinished headers is still open")
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dial(t)
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Close {
			t.Fatalf("status %d, close %v: want 200 on a kept-alive connection", res.StatusCode, res.Close)
		}
		if !closedWithin(t, conn, 5*time.Second) {
			t.Errorf("an idle keep-alive connection is still open")
		}
	})
}
