package conductor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/agent/protocol"
	"github.com/ironfleet/ironfleet/internal/rootdevice"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// Records keeps what the conductor records about a node besides the node
// record itself (*transport.Records): its history, what its inspection
// found, and the allocation an undeploy ends.
type Records interface {
	// AddHistory appends an event to the node's history (bounded).
	AddHistory(ctx context.Context, node string, ev wire.HistoryEvent) error
	// SetInspection stores the node's inspection data, replacing any.
	SetInspection(ctx context.Context, node string, in wire.Inspection) error
	// DropAllocation deletes an allocation, if it still exists.
	DropAllocation(ctx context.Context, id string) error
	// Templates lists the deploy templates (a deploy runs the steps of
	// those its instance traits name).
	Templates(ctx context.Context) ([]wire.DeployTemplate, error)
}

// eventType is Ironic's event_type of a failure in state s: the activity
// it interrupted (ironic/common/states.py; the values node_history_record
// is called with in ironic/conductor/utils.py).
func eventType(s wire.ProvisionState) string {
	switch s {
	case wire.StateDeploying, wire.StateWaitCallback:
		return "deploying"
	case wire.StateCleaning, wire.StateCleanWait:
		return "cleaning"
	case wire.StateInspecting, wire.StateInspectWait:
		return "introspection"
	case wire.StateVerifying:
		// ironic/conductor/verify.py do_node_verify: a failed
		// verification is recorded as states.VERIFY.
		return "verify"
	case wire.StateDeleting:
		return "unprovision"
	}
	return "conductor"
}

// history records an error on the node's history, as Ironic's
// node_history_record(..., error=True) does wherever it sets last_error:
// severity ERROR, the activity, this conductor, the user who asked, the
// node's states as they were. The node's last_error is what clients act
// on; the history is its log, so failing to write it is logged, not
// returned (a retried task would repeat the work for want of a log line).
func (w *job) history(msg string, typ string) {
	user := w.task.RequestedBy
	if strings.HasPrefix(user, "conductor:") {
		user = "" // a continuation: no user asked for it
	}
	ev := wire.HistoryEvent{
		CreatedAt: time.Now().UTC(), Severity: wire.SeverityError, EventType: typ, Event: msg,
		Conductor: w.c.cfg.Host, User: user,
		State: w.node.ProvisionState, TargetProvisionState: w.node.TargetProvisionState,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 5*time.Second)
	defer cancel()
	if err := w.c.d.Records.AddHistory(ctx, w.node.UUID, ev); err != nil {
		w.c.log.Warn("cannot record a node history event", "node", w.node.UUID, "err", err)
	}
}

// ironicInventory is the agent's inventory in the shape Ironic stores and
// serves (ironic-python-agent's inventory: cpu, memory, disks,
// interfaces, system_vendor, boot, …), so that clients reading
// GET /v1/nodes/{node}/inventory (Metal3's hardware details) find the keys
// they look for. What the agent does not report is null, never invented.
func ironicInventory(inv protocol.Inventory, root string) (inventory, pluginData map[string]any) {
	disks := make([]any, 0, len(inv.Disks))
	var rootDisk map[string]any
	for _, d := range inv.Disks {
		doc := map[string]any{
			"name": "/dev/" + d.Name, "size": d.SizeBytes, "rotational": d.Rotational,
			"model": d.Model, "vendor": d.Vendor, "serial": nullable(d.Serial), "wwn": nullable(d.WWN),
			"wwn_with_extension": nullable(d.WWNWithExtension), "wwn_vendor_extension": nullable(d.WWNVendorExtension),
			"hctl": nullable(d.HCTL), "by_path": nullable(d.ByPath),
		}
		disks = append(disks, doc)
		if d.Path == root {
			rootDisk = doc
		}
	}
	nics := make([]any, 0, len(inv.Interfaces))
	for _, n := range inv.Interfaces {
		var speed any
		if n.SpeedMbps > 0 {
			speed = n.SpeedMbps
		}
		nics = append(nics, map[string]any{
			"name": n.Name, "mac_address": n.MACAddress, "has_carrier": n.HasCarrier, "speed_mbps": speed,
			"ipv4_address": nil, "ipv6_address": nil, "vendor": nil, "product": nil, "client_id": nil,
			"biosdevname": nil, "lldp": nil,
		})
	}
	inventory = map[string]any{
		"cpu": map[string]any{
			"model_name": inv.CPU.Model, "count": inv.CPU.Count, "architecture": nil, "frequency": nil, "flags": []any{},
		},
		"memory": map[string]any{
			"total": inv.Memory.TotalBytes, "physical_mb": inv.Memory.TotalBytes >> 20,
		},
		"disks":      disks,
		"interfaces": nics,
		"system_vendor": map[string]any{"product_name": nil, "serial_number": nil, "manufacturer": nil,
			"firmware": map[string]any{"vendor": nil, "version": nil, "build_date": nil}},
		"boot":        map[string]any{"current_boot_mode": nil, "pxe_interface": nil},
		"hostname":    nil,
		"bmc_address": nil,
	}
	pluginData = map[string]any{}
	if rootDisk != nil {
		pluginData["root_disk"] = rootDisk
	}
	return inventory, pluginData
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// storeInventory keeps what inspection read, in Ironic's shape, for
// GET /v1/nodes/{node}/inventory; an inspection that cannot keep it has
// failed (Metal3 would inspect again and again without it).
func (w *job) storeInventory(inv protocol.Inventory, hints rootdevice.Hints) error {
	root, _ := rootDisk(inv, hints)
	doc, plugin := ironicInventory(inv, root.Path)
	if err := w.c.d.Records.SetInspection(w.ctx, w.node.UUID, wire.Inspection{Inventory: doc, PluginData: plugin}); err != nil {
		return fmt.Errorf("storing the inventory: %w", err)
	}
	return nil
}
