package ipmi_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/internal/ipmitest"
	"github.com/ironfleet/ironfleet/internal/syncbuf"
	"github.com/ironfleet/ironfleet/transport/wire"
)

type harness struct {
	sim  *ipmitest.BMC
	drv  *ipmi.Driver
	reg  *prometheus.Registry
	logs *syncbuf.Buffer
}

// fastConfig keeps every wait in milliseconds.
func fastConfig() ipmi.Config {
	return ipmi.Config{
		RequestTimeout: 200 * time.Millisecond,
		Attempts:       3,
		Backoff:        time.Millisecond,
		MaxBackoff:     5 * time.Millisecond,
		PowerTimeout:   2 * time.Second,
		PollInterval:   5 * time.Millisecond,
	}
}

func start(t *testing.T, cfg ipmi.Config, opts ...ipmitest.Option) *harness {
	t.Helper()
	h := &harness{sim: ipmitest.Start(t, opts...), reg: prometheus.NewRegistry(), logs: &syncbuf.Buffer{}}
	cfg.Registerer = h.reg
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	drv, err := ipmi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.drv = drv
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), h.sim.Password) {
			t.Errorf("logs contain the BMC password:\n%s", h.logs)
		}
	})
	return h
}

func (h *harness) bmc(t *testing.T, override map[string]any) *ipmi.BMC {
	t.Helper()
	info := h.sim.DriverInfo()
	for k, v := range override {
		info[k] = v
	}
	b, err := h.drv.NodePower(wire.Node{UUID: "node-1", Driver: "ipmi", DriverInfo: info})
	if err != nil {
		t.Fatalf("NodePower: %v", err)
	}
	return b
}

// counter reads a counter of h's registry by name and label values.
func (h *harness) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if slices.Equal(got, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func countSets(calls []string, what string) int {
	n := 0
	for _, c := range calls {
		if c == what {
			n++
		}
	}
	return n
}

func TestPowerOnOffStatus(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, nil)
	ctx := t.Context()

	steps := []struct {
		target wire.PowerState
		wantOn bool
	}{
		{wire.PowerOn, true},
		{wire.PowerOn, true}, // idempotent
		{wire.PowerOff, false},
		{wire.PowerOff, false}, // idempotent
		{wire.PowerOn, true},
	}
	for i, s := range steps {
		if err := b.SetPower(ctx, s.target); err != nil {
			t.Fatalf("step %d: SetPower(%s): %v", i, s.target, err)
		}
		if got := h.sim.PowerOn(t); got != s.wantOn {
			t.Fatalf("step %d: after SetPower(%s) the BMC's machine is on=%v, want %v", i, s.target, got, s.wantOn)
		}
		got, err := b.PowerState(ctx)
		if err != nil {
			t.Fatalf("step %d: PowerState: %v", i, err)
		}
		if got != s.target {
			t.Errorf("step %d: PowerState %q, want %q", i, got, s.target)
		}
	}
	calls := h.sim.Calls(t)
	if on, off := countSets(calls, "set power 1"), countSets(calls, "set power 0"); on != 2 || off != 1 {
		t.Errorf("BMC told power on %d times and off %d times, want 2 and 1 (repeats are no-ops): %q", on, off, calls)
	}
}

func TestPowerStateFollowsTheMachine(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, nil)
	h.sim.SetPowerOn(t, true) // switched on by hand
	got, err := b.PowerState(t.Context())
	if err != nil || got != wire.PowerOn {
		t.Fatalf("PowerState = %q, %v; want %q", got, err, wire.PowerOn)
	}
}

func TestReboot(t *testing.T) {
	tests := []struct {
		name      string
		on        bool
		wantCalls []string
	}{
		{"from on: off then on", true, []string{"set power 0", "set power 1"}},
		{"from off: on", false, []string{"set power 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, fastConfig())
			b := h.bmc(t, nil)
			h.sim.SetPowerOn(t, tt.on)
			if err := b.SetPower(t.Context(), wire.PowerRebooting); err != nil {
				t.Fatalf("reboot: %v", err)
			}
			if !h.sim.PowerOn(t) {
				t.Error("machine off after reboot, want on")
			}
			var sets []string
			for _, c := range h.sim.Calls(t) {
				if strings.HasPrefix(c, "set ") {
					sets = append(sets, c)
				}
			}
			if !slices.Equal(sets, tt.wantCalls) {
				t.Errorf("BMC was told %q, want %q", sets, tt.wantCalls)
			}
		})
	}
}

func TestSetBootDevice(t *testing.T) {
	h := start(t, fastConfig())
	tests := []struct {
		dev        wire.BootDevice
		persistent bool
		want       string // as ipmi_sim passes it to chassis_control
	}{
		{wire.BootPXE, false, "pxe"},
		{wire.BootDisk, true, "default"}, // IPMI "force hard drive"
		{wire.BootPXE, true, "pxe"},
		{wire.BootDisk, false, "default"},
	}
	for _, disableTimeout := range []bool{true, false} {
		b := h.bmc(t, map[string]any{"ipmi_disable_boot_timeout": disableTimeout})
		for _, tt := range tests {
			if err := b.SetBootDevice(t.Context(), tt.dev, tt.persistent); err != nil {
				t.Fatalf("SetBootDevice(%s, %v): %v", tt.dev, tt.persistent, err)
			}
			if got := h.sim.BootDevice(t); got != tt.want {
				t.Errorf("SetBootDevice(%s, persistent=%v): BMC boot device %q, want %q", tt.dev, tt.persistent, got, tt.want)
			}
		}
	}
}

func TestBadInputIsRefusedBeforeTheBMC(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, nil)
	if err := b.SetBootDevice(t.Context(), "cdrom", false); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("SetBootDevice(cdrom) = %v, want code %s", err, wire.CodeInvalidInput)
	}
	if err := b.SetPower(t.Context(), "sideways"); wire.CodeOf(err) != wire.CodeInvalidInput {
		t.Errorf("SetPower(sideways) = %v, want code %s", err, wire.CodeInvalidInput)
	}
	if _, err := h.drv.NodePower(wire.Node{UUID: "n", DriverInfo: map[string]any{"ipmi_port": 1}}); !errors.Is(err, ipmi.ErrInvalidInfo) {
		t.Errorf("NodePower without an address = %v, want ErrInvalidInfo", err)
	}
	if len(h.sim.Calls(t)) != 0 {
		t.Errorf("BMC was called: %q", h.sim.Calls(t))
	}
}

func TestUnknownUserIsRefused(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, map[string]any{"ipmi_username": "mallory"})
	_, err := b.PowerState(t.Context())
	if !errors.Is(err, ipmi.ErrAuth) || !strings.Contains(err.Error(), "(1 attempt)") {
		t.Fatalf("PowerState as an unknown user = %v, want ErrAuth after 1 attempt", err)
	}
}

func TestWrongPasswordFailsClearlyWithoutRetries(t *testing.T) {
	h := start(t, fastConfig())
	const wrong = "not-the-password"
	b := h.bmc(t, map[string]any{"ipmi_password": wrong})
	_, err := b.PowerState(t.Context())
	if err == nil {
		t.Fatal("PowerState with a wrong password succeeded")
	}
	msg := err.Error()
	if !errors.Is(err, ipmi.ErrAuth) || wire.CodeOf(err) != wire.CodeBMC {
		t.Errorf("error %q: want ErrAuth with code %s, got code %s", msg, wire.CodeBMC, wire.CodeOf(err))
	}
	for _, s := range []string{wrong, h.sim.Password} {
		if strings.Contains(msg, s) || strings.Contains(h.logs.String(), s) {
			t.Errorf("error or logs contain a password (%q): %s\n%s", s, msg, h.logs)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans lines, want one line for last_error", msg)
	}
	if !strings.Contains(msg, h.sim.Host) || !strings.Contains(msg, "(1 attempt)") {
		t.Errorf("error %q should name the BMC and say it was tried once", msg)
	}
	if n := h.counter(t, "ironfleet_ipmi_operations_total", "power status", "auth"); n != 1 {
		t.Errorf("auth failures counted %v, want 1", n)
	}
}

func TestBMCErrorsAreRetried(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, nil)
	h.sim.FailNextSets(t, 2) // two 0xff answers, then success: within 3 attempts
	if err := b.SetPower(t.Context(), wire.PowerOn); err != nil {
		t.Fatalf("SetPower after two BMC errors: %v", err)
	}
	if !h.sim.PowerOn(t) {
		t.Error("machine off, want on")
	}
	if n := h.counter(t, "ironfleet_ipmi_retries_total", "power on"); n != 2 {
		t.Errorf("retries counted %v, want 2", n)
	}
}

func TestPersistentBMCErrorSurfaces(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, map[string]any{"ipmi_retries": 1})
	h.sim.FailNextSets(t, 10)
	err := b.SetBootDevice(t.Context(), wire.BootPXE, false)
	if err == nil {
		t.Fatal("SetBootDevice against a failing BMC succeeded")
	}
	if !errors.Is(err, ipmi.ErrBMC) || wire.CodeOf(err) != wire.CodeBMC {
		t.Errorf("error %v: want ErrBMC with code %s", err, wire.CodeBMC)
	}
	for _, want := range []string{"set boot device pxe", "(2 attempts)", "0xff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should contain %q", err, want)
		}
	}
}

func TestBMCNotAnswering(t *testing.T) {
	t.Run("retries exhausted before the deadline", func(t *testing.T) {
		cfg := fastConfig()
		cfg.RequestTimeout = 20 * time.Millisecond
		h := start(t, cfg)
		b := h.bmc(t, nil)
		h.sim.Freeze(t)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		_, err := b.PowerState(ctx)
		if !errors.Is(err, ipmi.ErrNoAnswer) || wire.CodeOf(err) != wire.CodeBMC {
			t.Fatalf("PowerState of a frozen BMC = %v, want ErrNoAnswer with code %s", err, wire.CodeBMC)
		}
		if ctx.Err() != nil {
			t.Error("gave up because of the context, want because the attempts ran out")
		}
		if !strings.Contains(err.Error(), "(3 attempts)") {
			t.Errorf("error %q should say it was tried 3 times", err)
		}
		h.sim.Thaw(t)
		if _, err := b.PowerState(t.Context()); err != nil {
			t.Errorf("PowerState after the BMC came back: %v", err)
		}
	})
	t.Run("the deadline ends the retries", func(t *testing.T) {
		cfg := fastConfig()
		cfg.RequestTimeout = 20 * time.Millisecond
		cfg.Attempts = 1000
		h := start(t, cfg)
		b := h.bmc(t, nil)
		h.sim.Freeze(t)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := b.SetPower(ctx, wire.PowerOn)
		if !errors.Is(err, ipmi.ErrNoAnswer) || wire.CodeOf(err) != wire.CodeBMC {
			t.Fatalf("SetPower on a frozen BMC = %v, want ErrNoAnswer with code %s", err, wire.CodeBMC)
		}
		if ctx.Err() == nil {
			t.Error("returned before the deadline, with attempts left")
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		h := start(t, fastConfig())
		b := h.bmc(t, map[string]any{"ipmi_port": 1})
		_, err := b.PowerState(t.Context())
		if wire.CodeOf(err) != wire.CodeBMC || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("PowerState with nobody listening = %v, want a BMC error naming 127.0.0.1:1", err)
		}
	})
}

func TestCancellationKeepsTheCause(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, nil)
	h.sim.Freeze(t)
	lost := errors.New("lock lost")
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.SetPower(ctx, wire.PowerOn) }()
	cancel(lost)
	if err := <-done; !errors.Is(err, lost) {
		t.Fatalf("SetPower after cancellation = %v, want it to wrap the cause %v", err, lost)
	}
}

// A machine that never reaches the state the BMC was asked for: a chassis
// program that accepts every command and always reports power off.
func TestPowerStateNotReached(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "stuck.sh")
	script := "#!/bin/sh\ncase \"$2\" in get) echo power:0; echo boot:none;; esac\nexit 0\n"
	if err := os.WriteFile(prog, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig()
	cfg.PowerTimeout = 50 * time.Millisecond
	h := start(t, cfg, ipmitest.WithChassisProgram(prog))
	b := h.bmc(t, nil)
	err := b.SetPower(t.Context(), wire.PowerOn)
	if !errors.Is(err, ipmi.ErrPowerTimeout) || wire.CodeOf(err) != wire.CodeBMC {
		t.Fatalf("SetPower on a stuck machine = %v, want ErrPowerTimeout with code %s", err, wire.CodeBMC)
	}
	if !strings.Contains(err.Error(), "still power off") {
		t.Errorf("error %q should say the machine is still off", err)
	}
}

func TestConcurrentOperations(t *testing.T) {
	h := start(t, fastConfig())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			b := h.bmc(t, nil)
			if _, err := b.PowerState(t.Context()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent PowerState: %v", err)
	}
}

// Benchmarks against a real ipmi_sim: every operation opens and closes its
// own lanplus session (cipher suite 3).
func BenchmarkBMC(b *testing.B) {
	sim := ipmitest.Start(b)
	drv, err := ipmi.New(fastConfig())
	if err != nil {
		b.Fatal(err)
	}
	bmc, err := drv.NodePower(wire.Node{UUID: "bench", DriverInfo: sim.DriverInfo()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("PowerState", func(b *testing.B) {
		for b.Loop() {
			if _, err := bmc.PowerState(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetBootDevice", func(b *testing.B) {
		for b.Loop() {
			if err := bmc.SetBootDevice(ctx, wire.BootPXE, false); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Reboot", func(b *testing.B) {
		for b.Loop() {
			if err := bmc.SetPower(ctx, wire.PowerRebooting); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestSetBootDeviceUEFI(t *testing.T) {
	h := start(t, fastConfig())
	b, err := h.drv.NodePower(wire.Node{UUID: "uefi", DriverInfo: h.sim.DriverInfo(),
		Properties: map[string]any{"capabilities": "boot_mode:uefi"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetBootDevice(t.Context(), wire.BootPXE, true); err != nil {
		t.Fatalf("SetBootDevice on a UEFI node: %v", err)
	}
	if got := h.sim.BootDevice(t); got != "pxe" {
		t.Errorf("BMC boot device %q, want pxe", got)
	}
	if _, err := h.drv.NodePower(wire.Node{UUID: "bad", DriverInfo: h.sim.DriverInfo(),
		Properties: map[string]any{"capabilities": "boot_mode:coreboot"}}); !errors.Is(err, ipmi.ErrInvalidInfo) {
		t.Errorf("NodePower with boot_mode coreboot = %v, want ErrInvalidInfo", err)
	}
}
