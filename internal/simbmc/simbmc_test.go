package simbmc_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/conductor/sim"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/simbmc"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// serve starts a BMC for a new simulated machine and stops it when the
// test ends.
func serve(t *testing.T, cfg simbmc.Config) (*sim.Machine, *simbmc.BMC) {
	t.Helper()
	fleet := sim.NewFleet(sim.Config{})
	t.Cleanup(fleet.Close)
	m, err := fleet.Add("sim-0", "52:54:00:00:00:01")
	if err != nil {
		t.Fatal(err)
	}
	b, err := simbmc.New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return m, b
}

func driver(t *testing.T) *ipmi.Driver {
	t.Helper()
	d, err := ipmi.New(ipmi.Config{
		RequestTimeout: 500 * time.Millisecond, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		PowerTimeout: 5 * time.Second, PollInterval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIPMIDriverDrivesMachine manages a simulated machine through its BMC
// with the conductor's real ipmi driver (lanplus, cipher suite 3), as a
// conductor in another process does.
func TestIPMIDriverDrivesMachine(t *testing.T) {
	m, b := serve(t, simbmc.Config{Username: "ironfleet", Password: "s3cret"})
	info, err := ipmi.ParseInfo(b.DriverInfo())
	if err != nil {
		t.Fatal(err)
	}
	bmc := driver(t).BMC("node-1", info)
	ctx := t.Context()

	steps := []struct {
		name string
		do   func() error
		want sim.State
	}{
		{"pxe next boot", func() error { return bmc.SetBootDevice(ctx, wire.BootPXE, false) },
			sim.State{Power: wire.PowerOff, NextBoot: wire.BootPXE, BootDevice: wire.BootDisk}},
		{"power on boots pxe", func() error { return bmc.SetPower(ctx, wire.PowerOn) },
			sim.State{Power: wire.PowerOn, BootDevice: wire.BootDisk, BootedFrom: wire.BootPXE, Boots: 1}},
		{"disk persistent", func() error { return bmc.SetBootDevice(ctx, wire.BootDisk, true) },
			sim.State{Power: wire.PowerOn, BootDevice: wire.BootDisk, BootedFrom: wire.BootPXE, Boots: 1}},
		{"reboot boots disk", func() error { return bmc.SetPower(ctx, wire.PowerRebooting) },
			sim.State{Power: wire.PowerOn, BootDevice: wire.BootDisk, BootedFrom: wire.BootDisk, Boots: 2}},
		{"power off", func() error { return bmc.SetPower(ctx, wire.PowerOff) },
			sim.State{Power: wire.PowerOff, BootDevice: wire.BootDisk, BootedFrom: wire.BootDisk, Boots: 2}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := m.State(); got != s.want {
			t.Fatalf("%s: machine %+v, want %+v", s.name, got, s.want)
		}
		got, err := bmc.PowerState(ctx)
		if err != nil || got != s.want.Power {
			t.Fatalf("%s: PowerState = %q, %v; want %q", s.name, got, err, s.want.Power)
		}
	}
}

// TestWrongPassword: the BMC refuses a session with the wrong password, and
// the driver says so.
func TestWrongPassword(t *testing.T) {
	_, b := serve(t, simbmc.Config{})
	di := b.DriverInfo()
	di["ipmi_password"] = "wrong"
	di["ipmi_retries"] = 0
	info, err := ipmi.ParseInfo(di)
	if err != nil {
		t.Fatal(err)
	}
	_, err = driver(t).BMC("node-1", info).PowerState(t.Context())
	var we *wire.Error
	if !errors.As(err, &we) || we.Code() != wire.CodeBMC {
		t.Fatalf("PowerState with a wrong password: %v, want a BMC error", err)
	}
}

// TestIPMItool checks the BMC with the tool operators use.
func TestIPMItool(t *testing.T) {
	bin, err := exec.LookPath("ipmitool")
	if err != nil {
		redistest.Unavailable(t, err)
	}
	m, b := serve(t, simbmc.Config{})
	ipmitool := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		base := []string{"-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(b.Port()), "-U", "admin", "-P", "password"}
		out, err := exec.CommandContext(ctx, bin, append(base, args...)...).CombinedOutput() //nolint:gosec // test
		if err != nil {
			t.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := ipmitool("chassis", "power", "status"); got != "Chassis Power is off" {
		t.Errorf("power status: %q", got)
	}
	ipmitool("chassis", "bootdev", "pxe")
	ipmitool("chassis", "power", "on")
	if st := m.State(); st.Power != wire.PowerOn || st.BootedFrom != wire.BootPXE {
		t.Errorf("after bootdev pxe, power on: %+v", st)
	}
	if got := ipmitool("chassis", "power", "status"); got != "Chassis Power is on" {
		t.Errorf("power status: %q", got)
	}
}

func TestBadConfig(t *testing.T) {
	fleet := sim.NewFleet(sim.Config{})
	t.Cleanup(fleet.Close)
	m, err := fleet.Add("sim-0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    simbmc.Machine
		cfg  simbmc.Config
	}{
		{"nil machine", nil, simbmc.Config{}},
		{"host name", m, simbmc.Config{Host: "localhost"}},
		{"long user", m, simbmc.Config{Username: strings.Repeat("u", 17)}},
		{"long password", m, simbmc.Config{Password: strings.Repeat("p", 21)}},
		{"port", m, simbmc.Config{Port: 70000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := simbmc.New(tc.m, tc.cfg); !errors.Is(err, simbmc.ErrConfig) {
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
}
