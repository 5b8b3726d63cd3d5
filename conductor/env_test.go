package conductor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/ironfleet/ironfleet/agent"
	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/dispatch"
	"github.com/ironfleet/ironfleet/internal/natstest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// env is a fleet on real NATS JetStream and a real redis-server, with
// simulated machines. The test plays the API's part in the agent protocol
// (recording the agent's token at lookup, publishing its heartbeats as
// tasks); each booted machine runs a real agent command server.
type env struct {
	t        *testing.T
	nats     *natstest.Server
	redis    *redistest.Server
	bus      *transport.Bus
	inv      *transport.Inventory
	reg      *transport.Registry
	rc       *redis.Client
	locks    *lock.Locker
	machines *sim.Fleet
	boot     *pxe.Configs
	image    []byte
	imageURL string
	imageSHA string
	diskDir  string
	// heartbeat is how often simulated agents beat.
	heartbeat time.Duration
	busCfg    transport.BusConfig
	// deps, when set, adjusts each conductor's dependencies before New.
	deps func(host string, d *conductor.Deps)
	// asked records, per node, the names of the commands its agents were
	// asked to run, in order (agentCommands).
	askedMu sync.Mutex
	asked   map[string][]string
	// secondDisk, when set before enroll, gives each machine's agent a
	// second disk: vda (1 GiB, serial "disk0-<machine>") then vdb (2 GiB,
	// serial "disk1-<machine>"), for root device hints to choose from.
	secondDisk bool
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, heartbeat: 20 * time.Millisecond, diskDir: t.TempDir()}
	e.nats = natstest.Start(t)
	e.redis = redistest.Start(t)
	e.busCfg = transport.BusConfig{AckWait: 2 * time.Second, MaxDeliver: 10}
	e.connect(t)
	e.machines = sim.NewFleet(sim.Config{})
	t.Cleanup(e.machines.Close)
	var err error
	e.boot, err = pxe.NewConfigs(pxe.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.image = make([]byte, 256<<10)
	for i := range e.image {
		e.image[i] = byte(i * 7)
	}
	sum := sha256.Sum256(e.image)
	e.imageSHA = hex.EncodeToString(sum[:])
	img := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "image.img", time.Time{}, bytes.NewReader(e.image))
	}))
	t.Cleanup(img.Close)
	e.imageURL = img.URL + "/image.img"
	return e
}

func (e *env) connect(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	nc := e.nats.Conn(t)
	var err error
	if e.bus, err = transport.NewBus(ctx, nc, e.busCfg); err != nil {
		t.Fatal(err)
	}
	if e.inv, err = transport.NewInventory(ctx, e.bus.JetStream(), transport.InventoryConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.inv.Close)
	if e.reg, err = transport.NewRegistry(ctx, e.bus.JetStream(), transport.RegistryConfig{}); err != nil {
		t.Fatal(err)
	}
	opts := e.redis.Options()
	opts.ContextTimeoutEnabled = true
	e.rc = redis.NewClient(opts)
	t.Cleanup(func() { _ = e.rc.Close() })
	e.locks = newLocker(t, e.rc, "test")
}

func newLocker(t *testing.T, rc *redis.Client, holder string) *lock.Locker {
	t.Helper()
	l, err := lock.New(t.Context(), rc, lock.Config{TTL: time.Second, ClaimTimeout: 5 * time.Second, Interval: 50 * time.Millisecond, Holder: holder})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// conductorDeps are one conductor process's own connections: killing them
// is killing the process, as far as NATS and Redis can tell.
type conductorProc struct {
	c      *conductor.Conductor
	nc     *nats.Conn
	rc     *redis.Client
	cancel context.CancelFunc
	done   chan error
}

func (e *env) startConductor(t *testing.T, host string, groups []string, mod func(*conductor.Config)) *conductorProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	nc := natstest.Connect(t, e.nats.URL())
	bus, err := transport.NewBus(ctx, nc, transport.BusConfig{AckWait: e.busCfg.AckWait, MaxDeliver: e.busCfg.MaxDeliver, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := transport.NewInventory(ctx, bus.JetStream(), transport.InventoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := transport.NewRegistry(ctx, bus.JetStream(), transport.RegistryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	opts := e.redis.Options()
	opts.ContextTimeoutEnabled = true
	rc := redis.NewClient(opts)
	cfg := conductor.Config{
		Host: host, Groups: groups, Workers: 16,
		ClaimWait: 10 * time.Second, AgentPoll: 10 * time.Millisecond, Periodic: 50 * time.Millisecond,
		Boot: wire.BootParams{Kernel: "agent/vmlinuz", Ramdisk: "agent/initramfs", APIURL: "http://127.0.0.1:6385"},
	}
	if mod != nil {
		mod(&cfg)
	}
	deps := conductor.Deps{
		Tasks: bus, Nodes: inv, Locks: newLocker(t, rc, host), Registry: reg,
		Leases: redislock.New(rc), Boot: e.boot, Records: transport.NewRecords(inv),
		Drivers: conductor.Drivers{"sim": conductor.NewPowerDriver(e.machines.ValidateDriverInfo, e.machines.NodePower)},
	}
	if e.deps != nil {
		e.deps(host, &deps)
	}
	c, err := conductor.New(deps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &conductorProc{c: c, nc: nc, rc: rc, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		p.stop()
		inv.Close()
		_ = rc.Close()
	})
	return p
}

// stop shuts the conductor down and waits for it; it may be called again
// (Run's result is put back for the next caller).
func (p *conductorProc) stop() {
	p.cancel()
	err := <-p.done
	p.done <- err
}

// enroll creates a simulated machine and its node (driver sim) and port.
func (e *env) enroll(t *testing.T, name, group string) wire.Node {
	t.Helper()
	mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", len(name), name[len(name)-1], len(group))
	m, err := e.machines.Add(name, mac)
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.inv.CreateNode(t.Context(), wire.Node{
		UUID: wire.NewUUID(), Name: name, Driver: "sim", ConductorGroup: group,
		DriverInfo:     map[string]any{sim.KeyMachine: name},
		InstanceInfo:   map[string]any{"image_source": e.imageURL, "image_checksum": e.imageSHA},
		ProvisionState: wire.StateEnroll, CreatedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.inv.CreatePort(t.Context(), wire.Port{UUID: wire.NewUUID(), NodeUUID: n.UUID, Address: mac, PXEEnable: true, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	e.runAgentOnBoot(t, m, n.UUID)
	return n
}

// runAgentOnBoot starts a real agent command server each time the machine
// PXE-boots, records its token as the API's lookup would, and publishes its
// heartbeats as the API would, until the machine powers off.
func (e *env) runAgentOnBoot(t *testing.T, m *sim.Machine, node string) {
	disks := []protocol.Disk{{Name: "vda", Path: filepath.Join(e.diskDir, m.Name()+".img"), SizeBytes: 1 << 30}}
	if e.secondDisk {
		disks[0].Serial = "disk0-" + m.Name()
		disks = append(disks, protocol.Disk{Name: "vdb", Path: filepath.Join(e.diskDir, m.Name()+"-vdb.img"), SizeBytes: 2 << 30,
			Serial: "disk1-" + m.Name()})
	}
	for _, d := range disks {
		f, err := os.Create(d.Path) // a sparse disk
		if err == nil {
			err = f.Truncate(d.SizeBytes)
			_ = f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	m.OnBoot(func(ctx context.Context, dev wire.BootDevice) {
		if dev != wire.BootPXE {
			return
		}
		cs := agent.NewCommandServer(m, agent.CommandConfig{
			PowerDelay: time.Millisecond,
			Inventory: func(context.Context) (protocol.Inventory, error) {
				return protocol.Inventory{CPU: protocol.CPU{Count: 4}, Memory: protocol.Memory{TotalBytes: 8 << 30},
					Disks: disks}, nil
			},
		})
		srv := httptest.NewServer(e.recordCommands(node, cs))
		defer srv.Close()
		defer cs.Close()
		token := fmt.Sprintf("token-%s-%d", m.Name(), time.Now().UnixNano())
		cs.SetToken(token)
		sum := sha256.Sum256([]byte(token))
		// Lookup: the API issues the token once per boot.
		for ctx.Err() == nil {
			_, err := e.inv.UpdateNode(ctx, node, 0, func(n *wire.Node) error {
				if n.Agent != nil && n.Agent.TokenHash != "" {
					return errors.New("token already issued")
				}
				n.Agent = &wire.AgentInfo{TokenHash: hex.EncodeToString(sum[:]), Token: token}
				return nil
			})
			if err == nil {
				break
			}
			_ = wait.Sleep(ctx, e.heartbeat)
		}
		params, _ := json.Marshal(wire.HeartbeatParams{CallbackURL: srv.URL, AgentVersion: "test", TokenHash: hex.EncodeToString(sum[:])})
		for ctx.Err() == nil {
			_, _ = e.bus.Publish(ctx, wire.NewTask(wire.OpHeartbeat, wire.Node{UUID: node}, "agent", params))
			_ = wait.Sleep(ctx, e.heartbeat)
		}
	})
}

// recordCommands serves h, recording the name of every command posted to it.
func (e *env) recordCommands(node string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/commands" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var req protocol.CommandRequest
			if json.Unmarshal(body, &req) == nil {
				e.askedMu.Lock()
				if e.asked == nil {
					e.asked = map[string][]string{}
				}
				e.asked[node] = append(e.asked[node], req.Name)
				e.askedMu.Unlock()
			}
		}
		h.ServeHTTP(w, r)
	})
}

// agentCommands returns the commands node's agents were asked to run so far.
func (e *env) agentCommands(node string) []string {
	e.askedMu.Lock()
	defer e.askedMu.Unlock()
	return slices.Clone(e.asked[node])
}

// request asks for an operation the way the API does, through the same
// code: the node's lock in standard mode, then internal/dispatch's Request
// (re-validation, the first move, publish, handoff to the task's ticket).
func (e *env) request(t *testing.T, node string, op wire.Operation, params any) {
	t.Helper()
	ctx := t.Context()
	var raw json.RawMessage
	if params != nil {
		raw, _ = json.Marshal(params)
	}
	var lk *lock.Lock
	var err error
	for {
		lk, err = e.locks.WithHolder("api").Acquire(ctx, node, &lock.Options{Purpose: string(op)})
		if !errors.Is(err, lock.ErrLocked) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := e.inv.Get(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dispatch.New(e.bus, e.inv, dispatch.Config{}).Request(ctx, lk, n, op, "test", raw); err != nil {
		_ = lk.Release(ctx)
		t.Fatal(err)
	}
}

// waitState waits until the node reaches state (failing fast on an
// unexpected failed state).
func (e *env) waitState(t *testing.T, node string, want wire.ProvisionState, within time.Duration) wire.Node {
	t.Helper()
	deadline := time.Now().Add(within)
	var n wire.Node
	for time.Now().Before(deadline) {
		var err error
		n, err = e.inv.Get(t.Context(), node)
		if err != nil {
			t.Fatal(err)
		}
		if n.ProvisionState == want {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("node %s (%s) is %q (step %q, last_error %q) after %s, want %q", n.Name, node, n.ProvisionState, n.Step, n.LastError, within, want)
	return n
}

// newImageServer serves image, calling hold before each response body.
func newImageServer(t *testing.T, image []byte, hold func()) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold()
		http.ServeContent(w, r, "image.img", time.Time{}, bytes.NewReader(image))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// waitQueueEmpty waits until the TASKS work queue holds nothing: every task
// published was acked (a work queue drops a message when it is acked).
func (e *env) waitQueueEmpty(t *testing.T, within time.Duration) {
	t.Helper()
	st, err := e.bus.JetStream().Stream(t.Context(), transport.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(within)
	for {
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still queued or unacked after %s", info.State.Msgs, within)
		}
		_ = wait.Sleep(t.Context(), 20*time.Millisecond)
	}
}
