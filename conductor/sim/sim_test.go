package sim_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func newFleet(t *testing.T, cfg sim.Config) *sim.Fleet {
	t.Helper()
	f := sim.NewFleet(cfg)
	t.Cleanup(f.Close)
	return f
}

func add(t *testing.T, f *sim.Fleet, name string, macs ...string) *sim.Machine {
	t.Helper()
	m, err := f.Add(name, macs...)
	if err != nil {
		t.Fatalf("Add(%s): %v", name, err)
	}
	return m
}

// boots records where each boot went, in order.
type boots struct {
	ch chan wire.BootDevice
}

func record(m *sim.Machine) *boots {
	b := &boots{ch: make(chan wire.BootDevice, 16)}
	m.OnBoot(func(_ context.Context, dev wire.BootDevice) { b.ch <- dev })
	return b
}

func (b *boots) next(t *testing.T) wire.BootDevice {
	t.Helper()
	select {
	case dev := <-b.ch:
		return dev
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a boot")
		return ""
	}
}

func TestBootDeviceSemantics(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "m1", "52:54:00:00:00:01")
	b := record(m)
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	must(m.SetPower(ctx, wire.PowerOn))
	if dev := b.next(t); dev != wire.BootDisk {
		t.Errorf("a new machine booted from %s, want disk", dev)
	}

	must(m.SetBootDevice(ctx, wire.BootPXE, false))
	must(m.SetPower(ctx, wire.PowerRebooting))
	if dev := b.next(t); dev != wire.BootPXE {
		t.Errorf("boot after a next-boot PXE: %s, want pxe", dev)
	}
	if st := m.State(); st.NextBoot != "" || st.BootDevice != wire.BootDisk {
		t.Errorf("after the one-time boot: %+v, want no next boot, persistent disk", st)
	}
	must(m.Reboot(ctx)) // the agent reboots after writing the image
	if dev := b.next(t); dev != wire.BootDisk {
		t.Errorf("boot after the one-time PXE boot: %s, want disk", dev)
	}

	must(m.SetBootDevice(ctx, wire.BootPXE, true))
	for i := range 2 {
		must(m.SetPower(ctx, wire.PowerRebooting))
		if dev := b.next(t); dev != wire.BootPXE {
			t.Errorf("reboot %d with persistent PXE: %s, want pxe", i, dev)
		}
	}
	must(m.SetBootDevice(ctx, wire.BootDisk, false))
	must(m.SetBootDevice(ctx, wire.BootPXE, true)) // persistent clears the one-time device
	must(m.SetPower(ctx, wire.PowerRebooting))
	if dev := b.next(t); dev != wire.BootPXE {
		t.Errorf("boot after persistent PXE over one-time disk: %s, want pxe", dev)
	}
	if st := m.State(); st.Boots != 6 || st.BootedFrom != wire.BootPXE || st.Power != wire.PowerOn {
		t.Errorf("state %+v, want 6 boots, last from pxe, on", st)
	}
}

func TestPowerIsIdempotent(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "m1")
	ctx := t.Context()
	var offs atomic.Int32
	m.OnPowerOff(func() { offs.Add(1) })
	steps := []struct {
		target    wire.PowerState
		wantPower wire.PowerState
		wantBoots int
	}{
		{wire.PowerOff, wire.PowerOff, 0},
		{wire.PowerRebooting, wire.PowerOn, 1}, // from off: just on
		{wire.PowerOn, wire.PowerOn, 1},
		{wire.PowerRebooting, wire.PowerOn, 2},
		{wire.PowerOff, wire.PowerOff, 2},
		{wire.PowerOff, wire.PowerOff, 2},
	}
	for i, s := range steps {
		if err := m.SetPower(ctx, s.target); err != nil {
			t.Fatalf("step %d: SetPower(%s): %v", i, s.target, err)
		}
		got, err := m.PowerState(ctx)
		if err != nil || got != s.wantPower || m.State().Boots != s.wantBoots {
			t.Errorf("step %d: after SetPower(%s): %s (%v), %d boots; want %s, %d boots", i, s.target, got, err, m.State().Boots, s.wantPower, s.wantBoots)
		}
	}
	if n := offs.Load(); n != 2 {
		t.Errorf("OnPowerOff called %d times, want 2 (the reboot's off, the power off)", n)
	}
	if err := m.SetPower(ctx, "sideways"); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("SetPower(sideways) = %v, want code %s", err, wire.CodeInvalidInput)
	}
	if err := m.SetBootDevice(ctx, "cdrom", false); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("SetBootDevice(cdrom) = %v, want code %s", err, wire.CodeInvalidInput)
	}
}

func TestPowerOffStopsTheAgent(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "m1")
	running, stopped := make(chan struct{}), make(chan struct{})
	m.OnBoot(func(ctx context.Context, _ wire.BootDevice) {
		close(running)
		<-ctx.Done() // an agent serving until the machine loses power
		close(stopped)
	})
	if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
		t.Fatal(err)
	}
	<-running
	if err := m.SetPower(t.Context(), wire.PowerOff); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the BootFunc's context was not cancelled by power off")
	}
}

// The agent's life on a PXE boot: it writes the image, then reboots the
// machine from inside its own BootFunc; the machine comes back from disk.
func TestAgentRebootsFromItsBootFunc(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "m1")
	seen := make(chan wire.BootDevice, 4)
	m.OnBoot(func(ctx context.Context, dev wire.BootDevice) {
		seen <- dev
		if dev == wire.BootPXE {
			if err := m.Reboot(ctx); err != nil {
				t.Errorf("agent reboot: %v", err)
			}
		}
	})
	m.FailNext(sim.OpSetPower, 100) // BMC faults do not touch the OS's own reboot
	if err := m.SetBootDevice(t.Context(), wire.BootPXE, false); err != nil {
		t.Fatal(err)
	}
	if err := m.Reboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []wire.BootDevice{wire.BootPXE, wire.BootDisk} {
		select {
		case got := <-seen:
			if got != want {
				t.Errorf("booted from %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for the %s boot", want)
		}
	}
}

func TestInjectedFaults(t *testing.T) {
	f := newFleet(t, sim.Config{BMCTimeout: 20 * time.Millisecond})
	m := add(t, f, "m1")
	ctx := t.Context()

	m.FailNext(sim.OpSetPower, 2)
	for i := range 2 {
		err := m.SetPower(ctx, wire.PowerOn)
		if !errors.Is(err, sim.ErrInjected) || wire.CodeOf(err) != wire.CodeBMC {
			t.Fatalf("SetPower %d = %v, want ErrInjected with code %s", i, err, wire.CodeBMC)
		}
	}
	if st := m.State(); st.Power != wire.PowerOff {
		t.Fatalf("failed power actions turned the machine %s", st.Power)
	}
	if err := m.SetPower(ctx, wire.PowerOn); err != nil {
		t.Fatalf("third SetPower: %v", err)
	}

	m.HangNext(sim.OpPowerState, 1)
	if _, err := m.PowerState(ctx); !errors.Is(err, sim.ErrNoAnswer) || wire.CodeOf(err) != wire.CodeBMC {
		t.Fatalf("hung PowerState = %v, want ErrNoAnswer with code %s", err, wire.CodeBMC)
	}
	if _, err := m.PowerState(ctx); err != nil {
		t.Fatalf("PowerState after the hang: %v", err)
	}

	m.HangNext(sim.OpSetBootDevice, 1)
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := m.SetBootDevice(short, wire.BootPXE, false); !errors.Is(err, sim.ErrNoAnswer) {
		t.Fatalf("hung SetBootDevice past the deadline = %v, want ErrNoAnswer", err)
	}
	lost := errors.New("lock lost")
	cctx, ccancel := context.WithCancelCause(ctx)
	ccancel(lost)
	m.HangNext(sim.OpPowerState, 1)
	if _, err := m.PowerState(cctx); !errors.Is(err, lost) {
		t.Fatalf("PowerState on a cancelled context = %v, want the cause %v", err, lost)
	}
}

func TestFleetLookups(t *testing.T) {
	f := newFleet(t, sim.Config{})
	m := add(t, f, "sim-0001", "52:54:00:AA:00:01", "52-54-00-aa-00-02")
	if got, ok := f.ByMAC("52:54:00:aa:00:02"); !ok || got != m {
		t.Error("ByMAC does not find the machine by its second MAC in another notation")
	}
	if got, ok := f.Machine("sim-0001"); !ok || got != m {
		t.Error("Machine does not find the machine by name")
	}
	for name, macs := range map[string][]string{
		"sim-0001": nil,                            // duplicate name
		"sim-0002": {"52:54:00:aa:00:01"},          // duplicate MAC
		"sim-0003": {"not-a-mac"},                  // bad MAC
		"":         nil,                            // no name
		"a b":      {"52:54:00:aa:00:09"},          // space in name
		"sim-0004": {"52:54:00:aa:00:05", "bogus"}, // one bad MAC
	} {
		if _, err := f.Add(name, macs...); err == nil {
			t.Errorf("Add(%q, %q) succeeded", name, macs)
		}
	}
	if got := f.Machines(); len(got) != 1 {
		t.Errorf("fleet has %d machines after refused Adds, want 1", len(got))
	}

	node := wire.Node{UUID: "n1", Driver: "sim", DriverInfo: map[string]any{sim.KeyMachine: "sim-0001"}}
	if p, err := f.NodePower(node); err != nil || p != m {
		t.Errorf("NodePower = %v, %v; want the machine", p, err)
	}
	for name, info := range map[string]map[string]any{
		"no key":        {},
		"not a string":  {sim.KeyMachine: 7},
		"blank":         {sim.KeyMachine: " "},
		"unknown":       {sim.KeyMachine: "sim-9999"},
		"nil driverinf": nil,
	} {
		err := f.ValidateDriverInfo(info)
		if wire.CodeOf(err) != wire.CodeInvalidInput {
			t.Errorf("%s: ValidateDriverInfo = %v, want code %s", name, err, wire.CodeInvalidInput)
		}
	}
	if err := sim.Validate(map[string]any{sim.KeyMachine: "sim-9999"}); err != nil {
		t.Errorf("static Validate of a well-formed driver_info: %v", err)
	}
}

func TestCloseStopsEveryBoot(t *testing.T) {
	f := sim.NewFleet(sim.Config{})
	var running, stopped sync.WaitGroup
	const n = 50
	running.Add(n)
	stopped.Add(n)
	for i := range n {
		m := add(t, f, fmt.Sprintf("m%03d", i))
		m.OnBoot(func(ctx context.Context, _ wire.BootDevice) {
			running.Done()
			<-ctx.Done()
			stopped.Done()
		})
		if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
			t.Fatal(err)
		}
	}
	running.Wait()
	f.Close() // returns only when every BootFunc has
	stopped.Wait()
	m, _ := f.Machine("m000")
	_ = m.SetPower(t.Context(), wire.PowerOff)
	if err := m.SetPower(t.Context(), wire.PowerOn); !errors.Is(err, sim.ErrClosed) {
		t.Errorf("power on after Close = %v, want ErrClosed", err)
	}
	if _, err := f.Add("late"); !errors.Is(err, sim.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
}

// Realistic timings, in synctest's virtual time: the conductor's calls take
// as long as the lab's hardware, and the agent starts only after the boot.
func TestRealisticTimings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := sim.RealisticTimings()
		f := sim.NewFleet(sim.Config{Timings: tm})
		defer f.Close()
		m, err := f.Add("m1")
		if err != nil {
			t.Fatal(err)
		}
		booted := make(chan time.Time, 1)
		m.OnBoot(func(context.Context, wire.BootDevice) { booted <- time.Now() })
		start := time.Now()
		if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
			t.Fatal(err)
		}
		onAt := time.Now()
		synctest.Wait()
		if len(booted) != 0 {
			t.Fatal("the machine booted as soon as it was powered on")
		}
		bootedAt := <-booted // virtual time runs on until the boot
		atLeast := func(d time.Duration) time.Duration { return time.Duration(float64(d) * (1 - tm.Jitter)) }
		if took := onAt.Sub(start); took < atLeast(tm.Status+tm.PowerOn) {
			t.Errorf("power on took %s, want at least %s", took, atLeast(tm.Status+tm.PowerOn))
		}
		if bootedAt.Sub(onAt) < atLeast(tm.Boot) {
			t.Errorf("booted %s after power on, want at least %s", bootedAt.Sub(onAt), atLeast(tm.Boot))
		}
	})
}

// Hundreds of machines per process, all booting an agent at once.
func TestManyMachines(t *testing.T) {
	const n = 500
	f := newFleet(t, sim.Config{Timings: sim.Timings{Boot: time.Millisecond, Jitter: 0.5}})
	var agents sync.WaitGroup
	agents.Add(n)
	var live atomic.Int32
	for i := range n {
		m := add(t, f, fmt.Sprintf("sim-%04d", i), fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256))
		m.OnBoot(func(ctx context.Context, _ wire.BootDevice) {
			live.Add(1)
			agents.Done()
			<-ctx.Done()
			live.Add(-1)
		})
	}
	var wg sync.WaitGroup
	for _, m := range f.Machines() {
		wg.Go(func() {
			if err := m.SetBootDevice(t.Context(), wire.BootPXE, false); err != nil {
				t.Error(err)
			}
			if err := m.SetPower(t.Context(), wire.PowerOn); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	agents.Wait()
	if got := live.Load(); got != n {
		t.Errorf("%d agents running, want %d", got, n)
	}
	for _, m := range f.Machines() {
		wg.Go(func() {
			if err := m.PowerOff(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	f.Close()
	if got := live.Load(); got != 0 {
		t.Errorf("%d agents still running after every machine powered off", got)
	}
}

func BenchmarkPowerCycle(b *testing.B) {
	f := sim.NewFleet(sim.Config{})
	defer f.Close()
	m, _ := f.Add("m1")
	ctx := context.Background()
	for b.Loop() {
		_ = m.SetBootDevice(ctx, wire.BootPXE, false)
		_ = m.SetPower(ctx, wire.PowerRebooting)
	}
}

func BenchmarkAddMachine(b *testing.B) {
	f := sim.NewFleet(sim.Config{})
	defer f.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = f.Add(fmt.Sprintf("m%d", i), fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)))
		i++
	}
}

// A PXE boot without a boot config for any of the machine's NICs falls
// through to the disk, as boot.ipxe's "|| exit" makes real machines do.
func TestPXEBootNeedsAConfig(t *testing.T) {
	var mu sync.Mutex
	configured := map[string]bool{}
	f := newFleet(t, sim.Config{PXEConfigured: func(mac string) bool {
		mu.Lock()
		defer mu.Unlock()
		return configured[mac]
	}})
	m := add(t, f, "m1", "52:54:00:00:00:01", "52:54:00:00:00:02")
	b := record(m)
	ctx := t.Context()
	for _, tt := range []struct {
		configure string
		want      wire.BootDevice
	}{
		{"", wire.BootDisk},
		{"52:54:00:00:00:02", wire.BootPXE},
	} {
		if tt.configure != "" {
			mu.Lock()
			configured[tt.configure] = true
			mu.Unlock()
		}
		if err := m.SetBootDevice(ctx, wire.BootPXE, false); err != nil {
			t.Fatal(err)
		}
		if err := m.SetPower(ctx, wire.PowerRebooting); err != nil {
			t.Fatal(err)
		}
		if got := b.next(t); got != tt.want {
			t.Errorf("configured %q: booted from %s, want %s", tt.configure, got, tt.want)
		}
	}
}
