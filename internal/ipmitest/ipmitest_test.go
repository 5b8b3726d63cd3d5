package ipmitest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/ironfleet/ironfleet/internal/ipmitest"
)

func connect(t *testing.T, b *ipmitest.BMC) *client.Client {
	t.Helper()
	c, err := client.NewClient(b.Host, b.Port, b.Username, b.Password)
	if err != nil {
		t.Fatal(err)
	}
	c.WithCipherSuiteID(types.CipherSuiteID3).WithTimeout(time.Second)
	if err := c.Connect(t.Context()); err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestStartRecordsChassisControl(t *testing.T) {
	b := ipmitest.Start(t)
	c := connect(t, b)
	ctx := t.Context()

	if b.PowerOn(t) {
		t.Fatal("a new BMC's machine is on, want off")
	}
	if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerUp); err != nil {
		t.Fatalf("power up: %v", err)
	}
	if !b.PowerOn(t) {
		t.Error("after power up: machine off, want on")
	}
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		t.Fatalf("chassis status: %v", err)
	}
	if !st.PowerIsOn {
		t.Error("chassis status says off, want on")
	}
	if err := c.SetBootDevice(ctx, types.BootDeviceSelectorForcePXE, types.BIOSBootTypeLegacy, false); err != nil {
		t.Fatalf("set boot device: %v", err)
	}
	if got := b.BootDevice(t); got != "pxe" {
		t.Errorf("boot device %q, want pxe", got)
	}
	if calls := b.Calls(t); !slices.Contains(calls, "set power 1") || !slices.Contains(calls, "set boot pxe") {
		t.Errorf("calls %q lack set power 1 / set boot pxe", calls)
	}
}

func TestFailNextSets(t *testing.T) {
	b := ipmitest.Start(t)
	c := connect(t, b)
	b.FailNextSets(t, 1)
	_, err := c.ChassisControl(t.Context(), chassis.ChassisControlPowerUp)
	if err == nil {
		t.Fatal("power up with a failing chassis program succeeded")
	}
	if rerr, ok := types.IsResponseError(err); !ok || rerr.CompletionCode() != 0xff {
		t.Errorf("error %v, want completion code 0xff", err)
	}
	if _, err := c.ChassisControl(t.Context(), chassis.ChassisControlPowerUp); err != nil {
		t.Fatalf("second power up: %v", err)
	}
	if !b.PowerOn(t) {
		t.Error("machine off after the second power up, want on")
	}
}
