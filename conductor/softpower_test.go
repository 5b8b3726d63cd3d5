package conductor_test

import (
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// nodeNow reads a node from the store.
func (e *env) nodeNow(t *testing.T, uuid string) wire.Node {
	t.Helper()
	n, err := e.inv.Get(t.Context(), uuid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSoftPower: a soft power off waits for the simulated OS to shut the
// machine down; a soft reboot then powers it on again; an OS that ignores
// the request fails the action, once the timeout has passed, with Ironic's
// last_error, leaving the machine on.
func TestSoftPower(t *testing.T) {
	tests := []struct {
		name      string
		target    wire.PowerState
		ignore    bool // the simulated OS ignores the shutdown request
		timeout   int  // the request's timeout, seconds (0: the conductor's)
		wantPower wire.PowerState
		wantBoots int // boots of the machine, counting the first
		wantError string
	}{
		{"soft power off", wire.PowerSoftOff, false, 0, wire.PowerOff, 1, ""},
		{"soft power off with a timeout", wire.PowerSoftOff, false, 30, wire.PowerOff, 1, ""},
		{"soft reboot", wire.PowerSoftRebooting, false, 0, wire.PowerOn, 2, ""},
		{"the OS never shuts down", wire.PowerSoftOff, true, 0, wire.PowerOn, 1,
			"Failed to change power state to 'power off' by 'soft power off': Failed to set node power state to power off."},
		{"soft reboot of an OS that never shuts down", wire.PowerSoftRebooting, true, 0, wire.PowerOn, 1,
			"Failed to change power state to 'power on' by 'soft rebooting': Failed to set node power state to power off."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.startConductor(t, "c1", nil, func(c *conductor.Config) {
				c.SoftPowerOffTimeout, c.PowerPoll = 200*time.Millisecond, 10*time.Millisecond
			})
			n := e.enroll(t, "soft-1", "")
			m, _ := e.machines.Machine("soft-1")
			m.OnBoot(nil) // no agent: the machine boots its disk
			if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
				t.Fatal(err)
			}
			m.IgnoreShutdown(tc.ignore)
			e.request(t, n.UUID, wire.OpPower, wire.PowerParams{Target: tc.target, TimeoutSeconds: tc.timeout})
			var got wire.Node
			waitFor(t, "the power action to end", func() bool {
				got = e.nodeNow(t, n.UUID)
				return got.PowerState != "" && got.TargetPowerState == ""
			})
			if got.PowerState != tc.wantPower || got.LastError != tc.wantError {
				t.Fatalf("power %q, last_error %q; want %q, %q", got.PowerState, got.LastError, tc.wantPower, tc.wantError)
			}
			if st := m.State(); st.Power != tc.wantPower || st.Boots != tc.wantBoots {
				t.Fatalf("machine %+v, want power %q after %d boots", st, tc.wantPower, tc.wantBoots)
			}
		})
	}
}

// TestSoftPowerOffWaitsForTheOS: while the simulated OS shuts down the
// node shows Ironic's target_power_state (power off) and its lock is held.
func TestSoftPowerOffWaitsForTheOS(t *testing.T) {
	e := newEnv(t)
	e.machines.Close()
	e.machines = sim.NewFleet(sim.Config{Timings: sim.Timings{Shutdown: 300 * time.Millisecond}})
	t.Cleanup(e.machines.Close)
	e.startConductor(t, "c1", nil, func(c *conductor.Config) { c.PowerPoll = 10 * time.Millisecond })
	n := e.enroll(t, "soft-2", "")
	m, _ := e.machines.Machine("soft-2")
	m.OnBoot(nil)
	if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
		t.Fatal(err)
	}
	e.request(t, n.UUID, wire.OpPower, wire.PowerParams{Target: wire.PowerSoftOff})
	waitFor(t, "target_power_state power off", func() bool { return e.nodeNow(t, n.UUID).TargetPowerState == wire.PowerOff })
	waitFor(t, "the machine to shut down", func() bool {
		got := e.nodeNow(t, n.UUID)
		return got.PowerState == wire.PowerOff && got.TargetPowerState == ""
	})
	if st := m.State(); st.Power != wire.PowerOff {
		t.Fatalf("machine %q, want off", st.Power)
	}
}

// TestInjectNMI: the NMI reaches the simulated machine, under the node's
// lock; a failing BMC is recorded in last_error.
func TestInjectNMI(t *testing.T) {
	e := newEnv(t)
	e.startConductor(t, "c1", nil, nil)
	n := e.enroll(t, "nmi-1", "")
	m, _ := e.machines.Machine("nmi-1")
	e.request(t, n.UUID, wire.OpInjectNMI, nil)
	waitFor(t, "the NMI", func() bool { return m.State().NMIs == 1 })
	e.waitQueueEmpty(t, 10*time.Second)
	if got := e.nodeNow(t, n.UUID).LastError; got != "" {
		t.Fatalf("last_error %q after an NMI, want none", got)
	}
	m.FailNext(sim.OpInjectNMI, 10)
	e.request(t, n.UUID, wire.OpInjectNMI, nil)
	waitFor(t, "the failure in last_error", func() bool { return e.nodeNow(t, n.UUID).LastError != "" })
	if got := e.nodeNow(t, n.UUID).LastError; got[:len("Failed to inject NMI: ")] != "Failed to inject NMI: " {
		t.Fatalf("last_error %q, want Failed to inject NMI: …", got)
	}
	if nmis := m.State().NMIs; nmis != 1 {
		t.Fatalf("NMIs %d, want still 1", nmis)
	}
}
