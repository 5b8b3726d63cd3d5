package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// consoleDialTimeout bounds connecting to a node's console.
const consoleDialTimeout = 10 * time.Second

// consoleWS is GET /v1/nodes/{n}/console/ws (admin only): the node's
// enabled console, proxied to the browser as a WebSocket, so that a client
// needs no socat. Each binary (or text) message from the client is written
// to the console as it is; the console's bytes come back as binary
// messages. The console is the TCP one the node's console_info names
// (ipmitool-socat, sim); a console that is not enabled, or the fake one
// that serves nothing, is refused before the upgrade with Ironic's
// NodeConsoleNotEnabled (400). Every session is logged with who opened it,
// the node, and the bytes each way when it ends; never credentials.
//
// The WebSocket library is github.com/coder/websocket (nhooyr's, now kept
// by Coder): no dependencies, context-aware, checks the Origin header by
// default (a browser on another site cannot ride an operator's cached
// http_basic credentials into a console), and adapts a connection to a
// net.Conn, which makes the proxy two io.Copy calls.
func (s *Server) consoleWS(c *gin.Context) {
	n, err := s.findNode(c, c.Param("node"))
	if err != nil {
		s.fail(c, err)
		return
	}
	if !n.ConsoleEnabled || n.Console == nil {
		s.fail(c, badRequest("Console access is not enabled on node %s", n.UUID))
		return
	}
	u, err := url.Parse(n.Console.URL)
	if err != nil || u.Scheme != "tcp" || u.Host == "" {
		s.fail(c, wire.Errorf(wire.CodeInternal, "node %s: console URL %q is not tcp://host:port", n.UUID, n.Console.URL))
		return
	}
	ctx := c.Request.Context()
	dctx, cancel := context.WithTimeout(ctx, consoleDialTimeout)
	tcp, err := new(net.Dialer).DialContext(dctx, "tcp", u.Host)
	cancel()
	if err != nil {
		s.fail(c, unavailable("the node's console", err))
		return
	}
	defer tcp.Close()
	ws, err := websocket.Accept(c.Writer, c.Request, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer func() { _ = ws.CloseNow() }() // after Close below, or on an error: nothing to tell
	// The console's bytes: no message size limit on what the client sends
	// beyond the library's default read limit, which a keyboard never nears.
	log := s.log.With("node", n.UUID, "user", requestedBy(c), "console", n.Console.URL, "remote", c.ClientIP())
	log.Info("console session started")
	start := time.Now()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	conn := websocket.NetConn(sctx, ws, websocket.MessageBinary)
	var in, out atomic.Int64
	done := make(chan struct{}, 2)
	go func() {
		k, _ := io.Copy(conn, tcp) // console → browser
		out.Add(k)
		done <- struct{}{}
	}()
	go func() {
		k, _ := io.Copy(tcp, conn) // browser → console
		in.Add(k)
		done <- struct{}{}
	}()
	<-done
	// One side ended: end the other and wait for it.
	stop()
	_ = tcp.Close()
	_ = conn.Close()
	<-done
	reason := "closed"
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		reason = err.Error()
	}
	log.Info("console session ended", "bytes_in", in.Load(), "bytes_out", out.Load(),
		"seconds", time.Since(start).Seconds(), "reason", reason)
}
