package transport

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// HistoryMaxEntries bounds a node's history: appending beyond it drops the
// oldest events, as Ironic's history purge does with its default
// [conductor]node_history_max_entries (ironic/conf/conductor.py, 300).
const HistoryMaxEntries = 300

// HistoryMaxEventBytes bounds the text of one stored history event, so
// that HistoryMaxEntries events always fit one record; a longer event is
// cut and ends with "...".
const HistoryMaxEventBytes = 2 << 10

// Record kinds of the Collections in Records.
const (
	kindAllocation     = "allocation"
	kindDeployTemplate = "deploy_template"
	kindHistory        = "node_history"
	kindInspection     = "node_inventory"
	kindPortgroup      = "portgroup"
	kindChassis        = "chassis"
	kindConnector      = "volume_connector"
	kindTarget         = "volume_target"
)

// Records are the collections of the resources that hang off the node
// inventory: allocations, deploy templates, portgroups, chassis, volume
// connectors and targets (keyed by their UUID), and per node its history
// and its last inspection's data (keyed by the node's UUID). NewRecords is cheap: it opens nothing.
type Records struct {
	inv *Inventory
	// Allocations are keyed by allocation UUID; names are unique ("name").
	Allocations *Collection[wire.Allocation]
	// DeployTemplates are keyed by template UUID; names are unique ("name").
	DeployTemplates *Collection[wire.DeployTemplate]
	// History is keyed by node UUID; AddHistory appends to it.
	History *Collection[wire.NodeHistory]
	// Inspections are keyed by node UUID; SetInspection replaces one.
	Inspections *Collection[wire.Inspection]
	// Portgroups, Chassis, VolumeConnectors and VolumeTargets are keyed by
	// their UUID; the API keeps their rules (api/portgroups.go, …).
	Portgroups       *Collection[wire.Portgroup]
	Chassis          *Collection[wire.Chassis]
	VolumeConnectors *Collection[wire.VolumeConnector]
	VolumeTargets    *Collection[wire.VolumeTarget]
}

// NewRecords returns the record collections stored alongside inv.
func NewRecords(inv *Inventory) *Records {
	return &Records{
		inv:             inv,
		Allocations:     NewCollection[wire.Allocation](inv, kindAllocation),
		DeployTemplates: NewCollection[wire.DeployTemplate](inv, kindDeployTemplate),
		History:         NewCollection[wire.NodeHistory](inv, kindHistory),
		Inspections:     NewCollection[wire.Inspection](inv, kindInspection),

		Portgroups:       NewCollection[wire.Portgroup](inv, kindPortgroup),
		Chassis:          NewCollection[wire.Chassis](inv, kindChassis),
		VolumeConnectors: NewCollection[wire.VolumeConnector](inv, kindConnector),
		VolumeTargets:    NewCollection[wire.VolumeTarget](inv, kindTarget),
	}
}

// put writes rec under id whether or not one exists: an update, or a
// create when there is none (and an update again when a create raced it).
func put[T any](ctx context.Context, c *Collection[T], id string, fn func(*T) error) error {
	for range 3 {
		_, err := c.Update(ctx, id, fn)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		var rec T
		if err := fn(&rec); err != nil {
			return err
		}
		err = c.Create(ctx, id, rec)
		if !errors.Is(err, ErrExists) {
			return err
		}
	}
	return wire.Errorf(wire.CodeConflict, "%w: %s %s", ErrCASExhausted, c.kind, id)
}

// dropIfNodeGone deletes record id of c when node is gone: a write that
// raced the node's deletion (ForgetNode) must not outlive it.
func dropIfNodeGone[T any](ctx context.Context, r *Records, c *Collection[T], node, id string) {
	if _, err := r.inv.Get(ctx, node); errors.Is(err, ErrNotFound) {
		_ = c.Delete(ctx, id)
	}
}

// AddHistory appends ev to node's history, giving it a UUID and a time
// when it has none, cutting its text at HistoryMaxEventBytes and dropping
// the oldest events beyond HistoryMaxEntries.
func (r *Records) AddHistory(ctx context.Context, node string, ev wire.HistoryEvent) error {
	if ev.UUID == "" {
		ev.UUID = wire.NewUUID()
	}
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = time.Now().UTC()
	}
	ev.Event = cut(ev.Event, HistoryMaxEventBytes)
	err := put(ctx, r.History, node, func(h *wire.NodeHistory) error {
		h.Node = node
		h.Events = append(h.Events, ev)
		if over := len(h.Events) - HistoryMaxEntries; over > 0 {
			h.Events = append([]wire.HistoryEvent(nil), h.Events[over:]...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("transport: node %s history: %w", node, err)
	}
	dropIfNodeGone(ctx, r, r.History, node, node)
	return nil
}

// cut shortens s to at most n bytes (on a rune boundary), ending with
// "..." when it was longer.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// SetInspection stores what an inspection of node found, replacing what
// an earlier one did.
func (r *Records) SetInspection(ctx context.Context, node string, in wire.Inspection) error {
	in.Node = node
	if in.CreatedAt.IsZero() {
		in.CreatedAt = time.Now().UTC()
	}
	err := put(ctx, r.Inspections, node, func(cur *wire.Inspection) error {
		*cur = in
		return nil
	})
	if err != nil {
		return fmt.Errorf("transport: node %s inventory: %w", node, err)
	}
	dropIfNodeGone(ctx, r, r.Inspections, node, node)
	return nil
}

// ForgetNode deletes what refers to a deleted node: its history, its
// inspection data and its allocations, as Ironic's destroy_node does
// (ironic/db/sqlalchemy/api.py). Records already gone are fine.
func (r *Records) ForgetNode(ctx context.Context, node string) error {
	var errs []error
	for _, del := range []func() error{
		func() error { return r.History.Delete(ctx, node) },
		func() error { return r.Inspections.Delete(ctx, node) },
	} {
		if err := del(); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	allocs, err := r.Allocations.List(ctx, func(a wire.Allocation) bool { return a.NodeUUID == node })
	if err != nil {
		errs = append(errs, err)
	}
	for _, a := range allocs {
		if err := r.DeleteAllocation(ctx, a); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("transport: forget node %s: %w", node, err)
	}
	return nil
}

// DeleteAllocation deletes allocation a and gives its name back. The
// node it reserved is the caller's to clear (under the node's lock).
func (r *Records) DeleteAllocation(ctx context.Context, a wire.Allocation) error {
	if err := r.Allocations.Delete(ctx, a.UUID); err != nil {
		return err
	}
	if a.Name != "" {
		r.Allocations.Release(ctx, "name", a.Name, a.UUID)
	}
	return nil
}

// DropAllocation deletes allocation id, if there is one, and gives its
// name back: what an undeploy does to the allocation of its node.
func (r *Records) DropAllocation(ctx context.Context, id string) error {
	a, err := r.Allocations.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.DeleteAllocation(ctx, a); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Templates lists every deploy template.
func (r *Records) Templates(ctx context.Context) ([]wire.DeployTemplate, error) {
	return r.DeployTemplates.List(ctx, nil)
}
