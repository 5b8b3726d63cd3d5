// Package natstest runs real NATS servers with JetStream inside the test
// process, the way nats-server's own tests do: the nats-server module on a
// random loopback port, its store under t.TempDir(), shut down in t.Cleanup.
//
// Start gives one server; StartCluster gives an n-node JetStream cluster
// whose nodes can be stopped and restarted one at a time.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is one in-process nats-server with JetStream.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start runs a JetStream-enabled nats-server on a random loopback port with
// its store in a temporary directory, shut down when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	opts := &server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   tb.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		// Keep large enough for the tests' streams, small enough for CI.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
	}
	s := &Server{opts: opts}
	s.run(tb)
	// Pin the port so that a restart comes back where clients look for it.
	opts.Port = s.Addr().(*net.TCPAddr).Port
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) run(tb testing.TB) {
	tb.Helper()
	ns, err := server.NewServer(s.opts)
	if err != nil {
		tb.Fatalf("natstest: new server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		tb.Fatalf("natstest: server %s not ready within 10s", s.opts.ServerName)
	}
	s.Server = ns
}

// URL is the client URL, stable across restarts.
func (s *Server) URL() string {
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// StoreDir is where JetStream keeps its data.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

// Conn connects a client that keeps reconnecting (for restart tests), closed
// when tb ends.
func (s *Server) Conn(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	return Connect(tb, s.URL(), opts...)
}

// Connect dials url with test-friendly reconnect settings.
func Connect(tb testing.TB, url string, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		tb.Fatalf("natstest: connect %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Stop shuts the server down and waits for it; safe to call twice.
func (s *Server) Stop() {
	if s.Server == nil {
		return
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart stops the server and starts a new one with the same name, port and
// store, so JetStream state (streams, consumers, KV) survives as it would
// across a real process restart.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	s.run(tb)
}

// Cluster is an in-process JetStream cluster.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs n clustered JetStream servers on loopback, waits until
// they have elected a meta leader, and shuts them down when tb ends.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("natstest: cluster of %d nodes", n)
	}
	clientPorts, routePorts := freePorts(tb, n), freePorts(tb, n)
	routes := make([]*url.URL, n)
	for i := range n {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(routePorts[i]))}
	}
	base := tb.TempDir()
	c := &Cluster{}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   filepath.Join(base, name),
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "natstest",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes:             routes,
			JetStreamMaxMemory: 256 << 20,
			JetStreamMaxStore:  1 << 30,
		}
		s := &Server{opts: opts}
		s.run(tb)
		c.Nodes = append(c.Nodes, s)
	}
	tb.Cleanup(func() {
		for _, s := range c.Nodes {
			s.Stop()
		}
	})
	c.WaitReady(tb)
	return c
}

// URLs is the comma-separated client URL list of every node, as nats.Connect takes it.
func (c *Cluster) URLs() string {
	var out string
	for i, s := range c.Nodes {
		if i > 0 {
			out += ","
		}
		out += s.URL()
	}
	return out
}

// WaitReady waits until every running node is JetStream-current and a meta
// leader exists that may place replicas on every running node.
func (c *Cluster) WaitReady(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// Ready: a meta leader that counts every running node as a peer
		// it may place replicas on (online, with JetStream, stats
		// received): until then a stream of n replicas is refused "no
		// suitable peers for placement".
		ok, running := false, 0
		for _, s := range c.Nodes {
			if s.Running() {
				running++
			}
		}
		for _, s := range c.Nodes {
			if s.Running() && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == running {
				ok = true
			}
		}
		for _, s := range c.Nodes {
			if s.Running() && !s.JetStreamIsCurrent() {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("natstest: cluster has no JetStream meta leader after 30s")
}

func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	for range n {
		l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("natstest: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}
