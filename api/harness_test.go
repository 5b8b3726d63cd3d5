package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestMain fails the package if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// http.Client keep-alive connections of gophercloud's default client.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

// env is one API over real NATS (JetStream) and a real redis-server,
// through the real transport and lock packages.
type env struct {
	t      testing.TB
	srv    *api.Server
	http   *httptest.Server
	url    string
	inv    *transport.Inventory
	bus    *transport.Bus
	reg    *transport.Registry
	locker *lock.Locker
	js     jetstream.JetStream
	nc     *nats.Conn
	ns     *natstest.Server
	rs     *redistest.Server
}

type envOption func(*api.Config)

func drivers(t testing.TB) conductor.Drivers {
	t.Helper()
	ipmiDrv, err := ipmi.New(ipmi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fleet := sim.NewFleet(sim.Config{})
	t.Cleanup(fleet.Close)
	return conductor.Drivers{
		"ipmi":          conductor.Describe(conductor.NewPowerDriver(ipmi.Validate, ipmiDrv.NodePower), ipmi.Properties),
		"sim":           conductor.Describe(conductor.NewPowerDriver(sim.Validate, fleet.NodePower), sim.Properties),
		"fake-hardware": conductor.FakeHardware(),
	}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := natstest.Start(t)
	nc := ns.Conn(t)
	bus, err := transport.NewBus(ctx, nc, transport.BusConfig{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := transport.NewInventory(ctx, bus.JetStream(), transport.InventoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inv.Close)
	reg, err := transport.NewRegistry(ctx, bus.JetStream(), transport.RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t)
	ro := rs.Options()
	ro.ContextTimeoutEnabled = true
	rc := redis.NewClient(ro)
	t.Cleanup(func() { _ = rc.Close() })
	// Wired as internal/fleet wires every process: the lock's changes go on EVENTS.
	lockEvents := dispatch.NewLockEvents(bus, slog.New(slog.DiscardHandler))
	t.Cleanup(lockEvents.Close)
	locker, err := lock.New(ctx, rc, lock.Config{TTL: 2 * time.Second, Holder: api.LockHolder("api-test"), OnChange: lockEvents.Observe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	cfg := api.Config{
		Logger:       slog.New(slog.DiscardHandler),
		Registerer:   prometheus.NewRegistry(),
		LockAttempts: 2,
		LockInterval: 10 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := api.New(api.Deps{
		Nodes: inv, Ports: inv, Tasks: bus, Locks: locker, Conductors: reg, Drivers: drivers(t), Records: transport.NewRecords(inv),
		DriverNames: []string{"ipmi", "sim", "fake-hardware"}, Events: bus,
		Checks: map[string]api.Checker{
			"redis": api.CheckFunc(func(ctx context.Context) error { return rc.Ping(ctx).Err() }),
		},
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, http: hs, url: hs.URL, inv: inv, bus: bus, reg: reg, locker: locker,
		js: bus.JetStream(), nc: nc, ns: ns, rs: rs}
}

// resp is an answer read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// fault decodes Ironic's error body: error_message holds a JSON string.
func (r resp) fault(t testing.TB) map[string]any {
	t.Helper()
	var inner map[string]any
	msg, _ := r.json(t)["error_message"].(string)
	if err := json.Unmarshal([]byte(msg), &inner); err != nil {
		t.Fatalf("error_message %q is not JSON: %v (body %s)", msg, err, r.body)
	}
	return inner
}

// do sends a request with the latest microversion unless headers say
// otherwise ("" removes the version header).
func (e *env) do(method, path string, body any, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: data}
}

// mustStatus fails unless r has status want.
func mustStatus(t testing.TB, r resp, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
}

// createNode creates a sim node through the API and returns its UUID.
func (e *env) createNode(name string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{"driver": "sim", "driver_info": map[string]any{"sim_machine": name}}
	if name != "" {
		body["name"] = name
	}
	for k, v := range extra {
		body[k] = v
	}
	r := e.do(http.MethodPost, "/v1/nodes", body)
	mustStatus(e.t, r, http.StatusCreated)
	return r.json(e.t)["uuid"].(string)
}

// setState moves a node to a provision state directly in the inventory,
// as a conductor would (with a fencing token), to test actions from it.
func (e *env) setState(uuid string, st wire.ProvisionState) {
	e.t.Helper()
	ctx := e.t.Context()
	lk, err := e.locker.Acquire(ctx, uuid, &lock.Options{Purpose: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = lk.Release(context.WithoutCancel(ctx)) }()
	if _, err := e.inv.UpdateNode(ctx, uuid, lk.Token(), func(n *wire.Node) error {
		n.ProvisionState = st
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.inv.Sync(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// tasks reads every task published so far, oldest first, without consuming.
func (e *env) tasks() []wire.Task {
	e.t.Helper()
	ctx := e.t.Context()
	st, err := e.js.Stream(ctx, transport.TasksStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []wire.Task
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		task, err := transport.DecodeTask(m.Data)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, task)
	}
	return out
}

// call is one request of a table test: its name, what to send, and the
// status wanted.
type call struct {
	name       string
	method     string
	path       string
	body       any
	wantStatus int
}

// runUntilCleanup runs run in a goroutine until the test ends, then
// cancels its context, waits for it, and fails the test if it returned an
// error.
func runUntilCleanup(t *testing.T, what string, run func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
}

// faultString is the faultstring of an Ironic-format error response.
func faultString(t *testing.T, r resp) string {
	t.Helper()
	s, _ := r.fault(t)["faultstring"].(string)
	return s
}

// edit changes a node in the inventory under its lock, as a conductor
// would, and brings the API's cache up to date.
func (e *env) edit(uuid string, fn func(*wire.Node)) {
	e.t.Helper()
	ctx := e.t.Context()
	lk, err := e.locker.Acquire(ctx, uuid, &lock.Options{Purpose: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = lk.Release(context.WithoutCancel(ctx)) }()
	if _, err := e.inv.UpdateNode(ctx, uuid, lk.Token(), func(n *wire.Node) error { fn(n); return nil }); err != nil {
		e.t.Fatal(err)
	}
	if err := e.inv.Sync(ctx); err != nil {
		e.t.Fatal(err)
	}
}
