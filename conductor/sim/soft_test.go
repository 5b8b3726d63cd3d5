package sim_test

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// A soft power off takes the OS's shutdown time; an OS that ignores it
// leaves the machine on; a reboot in between makes the old request moot.
// In synctest's virtual time.
func TestSoftPowerOff(t *testing.T) {
	const shutdown = 3 * time.Second
	tests := []struct {
		name    string
		ignore  bool
		reboot  bool // reboot through the BMC before the OS is done
		wantOff bool
	}{
		{"the OS shuts down", false, false, true},
		{"the OS ignores the request", true, false, false},
		{"a reboot supersedes the request", false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := sim.NewFleet(sim.Config{Timings: sim.Timings{Shutdown: shutdown}})
				defer f.Close()
				m, err := f.Add("m1")
				if err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				if err := m.SetPower(ctx, wire.PowerOn); err != nil {
					t.Fatal(err)
				}
				m.IgnoreShutdown(tc.ignore)
				if err := m.SoftPowerOff(ctx); err != nil {
					t.Fatalf("SoftPowerOff: %v", err)
				}
				if got := m.State().Power; got != wire.PowerOn {
					t.Fatalf("power %q right after the request, want on until the OS has shut down", got)
				}
				if tc.reboot {
					if err := m.SetPower(ctx, wire.PowerRebooting); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(shutdown + time.Second)
				synctest.Wait()
				if off := m.State().Power == wire.PowerOff; off != tc.wantOff {
					t.Fatalf("off after the shutdown time: %v, want %v", off, tc.wantOff)
				}
			})
		})
	}
}

func TestSoftPowerOffOfAnOffMachineAndFaults(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "m1")
	ctx := t.Context()
	if err := m.SoftPowerOff(ctx); err != nil {
		t.Fatalf("soft power off of an off machine: %v, want nil", err)
	}
	if st := m.State(); st.Power != wire.PowerOff || st.Boots != 0 {
		t.Fatalf("state %+v, want off and never booted", st)
	}
	m.FailNext(sim.OpSoftPowerOff, 1)
	if err := m.SoftPowerOff(ctx); !errors.Is(err, sim.ErrInjected) || wire.CodeOf(err) != wire.CodeBMC {
		t.Fatalf("injected failure: %v (code %s), want ErrInjected, bmc_error", err, wire.CodeOf(err))
	}
}

func TestInjectNMI(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "m1")
	ctx := t.Context()
	for range 2 {
		if err := m.InjectNMI(ctx); err != nil {
			t.Fatalf("InjectNMI: %v", err)
		}
	}
	m.FailNext(sim.OpInjectNMI, 1)
	if err := m.InjectNMI(ctx); !errors.Is(err, sim.ErrInjected) {
		t.Fatalf("injected failure: %v, want ErrInjected", err)
	}
	if got := m.State().NMIs; got != 2 {
		t.Fatalf("NMIs %d, want 2 (the failed one not counted)", got)
	}
}
