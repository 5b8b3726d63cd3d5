package ipmi_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ironfleet/ironfleet/conductor/ipmi"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Soft power off and NMI reach a real BMC (ipmi_sim) as the chassis
// control commands Ironic's ipmitool sends ("power soft", "power diag"):
// ipmi_sim hands a soft shutdown to the chassis program as "set shutdown 1",
// and answers a diagnostic interrupt, which it does not implement, with
// completion code 0xcc: the driver reports that once, as a BMC error,
// without retrying a command no retry will change.
func TestSoftPowerOffAndNMI(t *testing.T) {
	h := start(t, fastConfig())
	b := h.bmc(t, nil)
	ctx := t.Context()
	h.sim.SetPowerOn(t, true)
	if err := b.SoftPowerOff(ctx); err != nil {
		t.Fatalf("SoftPowerOff: %v", err)
	}
	if h.sim.PowerOn(t) {
		t.Error("machine still on after the soft shutdown the chassis program honours at once")
	}
	if !slices.ContainsFunc(h.sim.Calls(t), func(c string) bool { return strings.HasPrefix(c, "set shutdown") }) {
		t.Errorf("BMC calls %q: no soft shutdown", h.sim.Calls(t))
	}
	err := b.InjectNMI(ctx)
	if !errors.Is(err, ipmi.ErrBMC) || wire.CodeOf(err) != wire.CodeBMC || !strings.Contains(err.Error(), "inject nmi") {
		t.Fatalf("InjectNMI on ipmi_sim: %v (code %s), want ErrBMC naming the operation", err, wire.CodeOf(err))
	}
	if got := h.counter(t, "ironfleet_ipmi_operations_total", "inject nmi", "error"); got != 1 {
		t.Errorf("inject nmi error counter %v, want 1", got)
	}
	if got := h.counter(t, "ironfleet_ipmi_retries_total", "inject nmi"); got != 0 {
		t.Errorf("inject nmi retried %v times, want 0 (0xcc is permanent)", got)
	}
}
