package provision

import (
	"reflect"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// HolderOnlyChange names the first field that differs between old and n
// and that only the holder of the node's lock may write, or "" when none
// does. These fields carry the flow a conductor drives under the lock —
// provision_state, target_provision_state, power_state, target_power_state,
// step, the flow's steps and step index, conductor, the dispatched first
// move, fence — and a write without the lock's fencing token must leave
// them alone (the inventory refuses it with ErrFenceRequired).
func HolderOnlyChange(old, n wire.Node) string {
	switch {
	case n.ProvisionState != old.ProvisionState:
		return "provision_state"
	case n.TargetProvisionState != old.TargetProvisionState:
		return "target_provision_state"
	case n.PowerState != old.PowerState:
		return "power_state"
	case n.TargetPowerState != old.TargetPowerState:
		return "target_power_state"
	case n.Step != old.Step:
		return "step"
	case n.StepIndex != old.StepIndex || !reflect.DeepEqual(n.Steps, old.Steps):
		return "steps"
	case n.Conductor != old.Conductor:
		return "conductor"
	case !reflect.DeepEqual(n.Dispatched, old.Dispatched):
		return "dispatched"
	case n.Fence != old.Fence:
		return "fence"
	}
	return ""
}
