package conductor_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestFullCycle takes simulated nodes through enroll → manageable →
// (cleaning) → available → active → (deleting, cleaning) → available, with
// two conductors, through real NATS and Redis; the agent writes the image
// and erases the disk through its command API.
func TestFullCycle(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	e.startConductor(t, "c2", nil, nil)
	const n = 4
	nodes := make([]wire.Node, n)
	for i := range n {
		nodes[i] = e.enroll(t, fmt.Sprintf("node-%d", i), "")
	}
	steps := []struct {
		op   wire.Operation
		want wire.ProvisionState
	}{
		{wire.OpManage, wire.StateManageable},
		{wire.OpProvide, wire.StateAvailable},
		{wire.OpDeploy, wire.StateActive},
		{wire.OpUndeploy, wire.StateAvailable},
	}
	for _, s := range steps {
		for _, node := range nodes {
			e.request(t, node.UUID, s.op, nil)
		}
		for _, node := range nodes {
			got := e.waitState(t, node.UUID, s.want, 30*time.Second)
			if got.LastError != "" || got.Step != "" || got.TargetProvisionState != "" {
				t.Fatalf("after %s node %s: last_error %q, step %q, target %q", s.op, got.Name, got.LastError, got.Step, got.TargetProvisionState)
			}
			if s.op == wire.OpDeploy {
				disk, err := os.ReadFile(filepath.Join(e.diskDir, got.Name+".img"))
				if err != nil || !bytes.Equal(disk[:len(e.image)], e.image) {
					t.Fatalf("node %s: disk does not hold the image after deploy (err %v)", got.Name, err)
				}
				m, _ := e.machines.Machine(got.Name)
				if st := m.State(); st.Power != wire.PowerOn {
					t.Fatalf("node %s deployed but machine state %+v", got.Name, st)
				}
			}
			if s.op == wire.OpUndeploy {
				disk, _ := os.ReadFile(filepath.Join(e.diskDir, got.Name+".img"))
				if len(disk) >= len(e.image) && bytes.Equal(disk[:len(e.image)], e.image) {
					t.Fatalf("node %s: image still on disk after cleaning", got.Name)
				}
			}
		}
	}
	// Both conductors took part; each is registered.
	cs, err := e.reg.Conductors(t.Context())
	if err != nil || len(cs) != 2 {
		t.Fatalf("registry = %+v, %v; want 2 conductors", cs, err)
	}
}

// TestInvalidActionChangesNothing: a task whose action does not apply to
// the node's state (deploy from enroll: two requests raced, and the node
// changed between the task's publishing and its run) is refused under the
// lock with an event naming the allowed actions, and the node is left as
// it was.
func TestInvalidActionChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "node-x", "")
	events := make(chan wire.Event, 16)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		_ = e.bus.SubscribeEvents(ctx, transport.EventSubscription{Node: node.UUID, Follow: true}, func(ev wire.Event) { events <- ev })
	}()
	// The API would refuse it up front: publish it as a raced task would be.
	n, err := e.inv.Get(t.Context(), node.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.Publish(t.Context(), wire.NewTask(wire.OpDeploy, n, "test", nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Type != wire.EventTaskFailed || ev.Code != wire.CodeInvalidTransition {
			t.Fatalf("event %+v, want task.failed with invalid_transition", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event for the refused task")
	}
	if got, _ := e.inv.Get(t.Context(), node.UUID); got.ProvisionState != wire.StateEnroll {
		t.Fatalf("node moved to %q", got.ProvisionState)
	}
}

// TestPowerAndBootDevice: power and boot device actions reach the machine
// and are recorded on the node.
func TestPowerAndBootDevice(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "node-p", "")
	m, _ := e.machines.Machine("node-p")
	e.request(t, node.UUID, wire.OpBootDevice, wire.BootDeviceParams{Device: wire.BootDisk, Persistent: true})
	e.request(t, node.UUID, wire.OpPower, wire.PowerParams{Target: wire.PowerOn})
	waitFor(t, "power on recorded", func() bool {
		n, _ := e.inv.Get(t.Context(), node.UUID)
		return n.PowerState == wire.PowerOn && n.BootDevice == wire.BootDisk && n.BootDevicePersistent
	})
	if st := m.State(); st.Power != wire.PowerOn {
		t.Fatalf("machine %+v, want powered on", st)
	}
	m.FailNext("set_power", 100)
	e.request(t, node.UUID, wire.OpPower, wire.PowerParams{Target: wire.PowerOff})
	waitFor(t, "power failure recorded", func() bool {
		n, _ := e.inv.Get(t.Context(), node.UUID)
		return n.LastError != "" && n.PowerState == wire.PowerOn
	})
}

// TestSeedScenario: the deploy's handoff to continue_deploy happens while
// other clients hammer the node's lock, as a serial console and heartbeats
// do; the deploy completes.
func TestSeedScenario(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	node := e.enroll(t, "node-s", "")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	nodeNoClean(t, e, node.UUID)
	e.request(t, node.UUID, wire.OpProvide, nil)
	e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var grabs int64
	var mu sync.Mutex
	for i := range 8 {
		pest := newLocker(t, e.rc, fmt.Sprint("console-", i))
		wg.Go(func() {
			for ctx.Err() == nil {
				lk, err := pest.Acquire(ctx, node.UUID, &lock.Options{Attempts: 1, Purpose: "console"})
				if err != nil {
					continue
				}
				mu.Lock()
				grabs++
				mu.Unlock()
				time.Sleep(3 * time.Millisecond)
				_ = lk.Release(context.WithoutCancel(ctx))
			}
		})
	}
	e.request(t, node.UUID, wire.OpDeploy, nil)
	got := e.waitState(t, node.UUID, wire.StateActive, 60*time.Second)
	cancel()
	wg.Wait()
	if got.LastError != "" {
		t.Fatalf("deployed with last_error %q", got.LastError)
	}
	if grabs == 0 {
		t.Fatal("the pests never got the lock: the scenario did not contend")
	}
	t.Logf("deploy completed while pests took the lock %d times", grabs)
}

func nodeNoClean(t *testing.T, e *env, uuid string) {
	t.Helper()
	no := false
	if _, err := e.inv.UpdateNode(t.Context(), uuid, 0, func(n *wire.Node) error { n.AutomatedClean = &no; return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestWaitTimeout: a node whose agent never calls back fails after the wait
// timeout instead of staying in wait call-back.
func TestWaitTimeout(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.WaitTimeout = 300 * time.Millisecond })
	node := e.enroll(t, "node-w", "")
	m, _ := e.machines.Machine("node-w")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	nodeNoClean(t, e, node.UUID)
	e.request(t, node.UUID, wire.OpProvide, nil)
	e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)
	m.OnBoot(nil) // no agent will ever call back
	e.request(t, node.UUID, wire.OpDeploy, nil)
	got := e.waitState(t, node.UUID, wire.StateDeployFailed, 20*time.Second)
	if got.LastError == "" {
		t.Fatal("deploy failed without a last_error")
	}
}

// TestDeployRefusesBadBootMode: a deploy whose boot mode is not bios or
// uefi, or whose instance_info asks for a mode the node's properties lock
// out, fails before the machine is touched, saying which field is wrong
// (Ironic's AgentDeploy.validate: deploy_utils.validate_capabilities and
// boot_mode_utils.get_boot_mode_for_deploy).
func TestDeployRefusesBadBootMode(t *testing.T) {
	tests := []struct {
		name        string
		props, inst map[string]any
		lastError   string
	}{
		{"bad instance_info value", nil, map[string]any{"boot_mode": "legacy"},
			"The parameter 'boot_mode' from instance_info['capabilities'] has an invalid value: 'legacy'. Acceptable values are: bios, uefi."},
		{"disagrees with properties", map[string]any{"capabilities": "boot_mode:bios"}, map[string]any{"boot_mode": "uefi"},
			"boot mode uefi violates node properties/capabilities bios"},
	}
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("node-bm%d", i)
			node := e.enroll(t, name, "")
			m, _ := e.machines.Machine(name)
			e.request(t, node.UUID, wire.OpManage, nil)
			e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
			nodeNoClean(t, e, node.UUID)
			e.request(t, node.UUID, wire.OpProvide, nil)
			e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)
			if _, err := e.inv.UpdateNode(t.Context(), node.UUID, 0, func(n *wire.Node) error {
				n.Properties = tt.props
				n.InstanceInfo["capabilities"] = tt.inst
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			boots := m.State().Boots
			e.request(t, node.UUID, wire.OpDeploy, nil)
			got := e.waitState(t, node.UUID, wire.StateDeployFailed, 20*time.Second)
			if !strings.Contains(got.LastError, tt.lastError) {
				t.Errorf("last_error %q, want it to contain %q", got.LastError, tt.lastError)
			}
			if n := m.State().Boots - boots; n != 0 {
				t.Errorf("the machine booted %d times during the refused deploy, want 0", n)
			}
		})
	}
}

// TestTwoGroups: each conductor group's nodes are handled by its own conductor.
func TestTwoGroups(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "east-1", []string{"east"}, nil)
	e.startConductor(t, "west-1", []string{"west"}, nil)
	east := e.enroll(t, "node-e", "east")
	west := e.enroll(t, "node-w", "west")
	e.request(t, east.UUID, wire.OpManage, nil)
	e.request(t, west.UUID, wire.OpManage, nil)
	if got := e.waitState(t, east.UUID, wire.StateManageable, 20*time.Second); got.Conductor != "east-1" {
		t.Fatalf("east node handled by %q", got.Conductor)
	}
	if got := e.waitState(t, west.UUID, wire.StateManageable, 20*time.Second); got.Conductor != "west-1" {
		t.Fatalf("west node handled by %q", got.Conductor)
	}
}

// TestConductorKilledMidDeploy: the conductor writing a node's image dies
// (its NATS connection and Redis client cut, no release); another conductor
// gets the redelivered continue_deploy and finishes the deploy.
func TestConductorKilledMidDeploy(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	var once sync.Once
	var entered = make(chan struct{})
	slow := e.slowImage(t, func() {
		once.Do(func() { close(entered) })
		<-gate
	})
	victim := e.startConductor(t, "victim", nil, nil)
	node := e.enroll(t, "node-k", "")
	e.request(t, node.UUID, wire.OpManage, nil)
	e.waitState(t, node.UUID, wire.StateManageable, 20*time.Second)
	nodeNoClean(t, e, node.UUID)
	e.request(t, node.UUID, wire.OpProvide, nil)
	e.waitState(t, node.UUID, wire.StateAvailable, 20*time.Second)
	if _, err := e.inv.UpdateNode(t.Context(), node.UUID, 0, func(n *wire.Node) error {
		n.InstanceInfo["image_source"] = slow
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.request(t, node.UUID, wire.OpDeploy, nil)
	select {
	case <-entered: // the victim's agent is downloading the image
	case <-time.After(30 * time.Second):
		t.Fatal("the deploy never reached the image download")
	}
	// kill -9: connections gone, nothing released.
	victim.nc.Close()
	_ = victim.rc.Close()
	victim.stop()
	close(gate)
	e.startConductor(t, "rescuer", nil, nil)
	got := e.waitState(t, node.UUID, wire.StateActive, 60*time.Second)
	if got.Conductor != "rescuer" {
		t.Fatalf("node finished by %q, want rescuer", got.Conductor)
	}
}

// slowImage serves the test image through a handler that calls hold first.
func (e *env) slowImage(t *testing.T, hold func()) string {
	t.Helper()
	srv := newImageServer(t, e.image, hold)
	return srv + "/slow.img"
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLimitsAdmitABurst: a group's deploy and clean limits bound the nodes
// working at once, not the nodes accepted: a burst of more provides and
// deploys than the limits (the API moves every one to cleaning or
// deploying before its task is published) all finish, the extra ones
// waiting their turn. The limits once counted the node itself, so with a
// limit of 1 not even one deploy started.
func TestLimitsAdmitABurst(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.MaxDeploys, c.MaxCleans = 1, 1 })
	e.startConductor(t, "c2", nil, func(c *conductor.Config) { c.MaxDeploys, c.MaxCleans = 1, 1 })
	const n = 3
	nodes := make([]wire.Node, n)
	for i := range n {
		nodes[i] = e.enroll(t, fmt.Sprintf("burst-%d", i), "")
	}
	for _, s := range []struct {
		op   wire.Operation
		want wire.ProvisionState
	}{
		{wire.OpManage, wire.StateManageable},
		{wire.OpProvide, wire.StateAvailable},
		{wire.OpDeploy, wire.StateActive},
	} {
		for _, node := range nodes {
			e.request(t, node.UUID, s.op, nil)
		}
		for _, node := range nodes {
			if got := e.waitState(t, node.UUID, s.want, 60*time.Second); got.LastError != "" {
				t.Fatalf("after %s node %s: last_error %q", s.op, got.Name, got.LastError)
			}
		}
	}
}
