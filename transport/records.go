package transport

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// RecordsBucket holds the inventory's other records, the ones that are
// neither nodes nor ports (chassis, portgroups, allocations, deploy
// templates, volume connectors and targets, node history, …): one JSON
// record per key "<kind>.<id>".
const RecordsBucket = "ifl_records"

// Collection is one kind of record in RecordsBucket, keyed by ID (a UUID),
// with compare-and-set updates and optional unique values (a name) claimed
// in the index bucket. Its records are read from the bucket, not a cache:
// these are the API's resources, not the fleet's hot path.
type Collection[T any] struct {
	inv  *Inventory
	kind string
}

// NewCollection returns the collection of kind ("portgroup", …), which must
// be a valid key token (letters, digits, '-', '_').
func NewCollection[T any](inv *Inventory, kind string) *Collection[T] {
	if err := checkToken("record kind", kind); err != nil {
		panic(err) // a programming error: kinds are constants
	}
	return &Collection[T]{inv: inv, kind: kind}
}

func (c *Collection[T]) key(id string) (string, error) {
	if err := checkToken(c.kind+" id", id); err != nil {
		return "", wire.Errorf(wire.CodeInvalidInput, "%w: %w", ErrInvalid, err)
	}
	return c.kind + "." + id, nil
}

// Create stores a new record; ErrExists (conflict) when id is taken.
func (c *Collection[T]) Create(ctx context.Context, id string, rec T) error {
	key, err := c.key(id)
	if err != nil {
		return err
	}
	data, err := c.inv.encode(c.kind, id, rec)
	if err != nil {
		return err
	}
	if _, err := c.inv.records.Create(ctx, key, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return wire.Errorf(wire.CodeConflict, "%w: %s %s", ErrExists, c.kind, id)
		}
		return kvErr("create "+c.kind+" "+id, err)
	}
	return nil
}

// Get reads a record; ErrNotFound (not_found) when there is none.
func (c *Collection[T]) Get(ctx context.Context, id string) (T, error) {
	rec, _, err := c.get(ctx, id)
	return rec, err
}

func (c *Collection[T]) get(ctx context.Context, id string) (T, uint64, error) {
	key, err := c.key(id)
	if err != nil {
		var zero T
		return zero, 0, err
	}
	return getRecord[T](ctx, c.inv.records, key, c.kind, id)
}

// Update applies fn to a fresh copy of record id and writes it back by
// compare-and-set, re-reading and re-applying fn when another writer won
// (at most InventoryConfig.CASRetries times). fn's error aborts the update
// and is returned wrapped.
func (c *Collection[T]) Update(ctx context.Context, id string, fn func(*T) error) (T, error) {
	var zero T
	key, err := c.key(id)
	if err != nil {
		return zero, err
	}
	for range c.inv.cfg.CASRetries {
		rec, rev, err := getRecord[T](ctx, c.inv.records, key, c.kind, id) // a deep copy for fn
		if err != nil {
			return zero, err
		}
		if err := fn(&rec); err != nil {
			return zero, fmt.Errorf("update %s %s: %w", c.kind, id, err)
		}
		data, err := c.inv.encode(c.kind, id, rec)
		if err != nil {
			return zero, err
		}
		_, err = c.inv.records.Update(ctx, key, data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return zero, kvErr("update "+c.kind+" "+id, err)
		}
		return rec, nil
	}
	return zero, wire.Errorf(wire.CodeConflict, "%w: %s %s after %d attempts", ErrCASExhausted, c.kind, id, c.inv.cfg.CASRetries)
}

// Delete removes record id; ErrNotFound when there is none.
func (c *Collection[T]) Delete(ctx context.Context, id string) error {
	key, err := c.key(id)
	if err != nil {
		return err
	}
	if _, _, err := c.get(ctx, id); err != nil {
		return err
	}
	if err := c.inv.records.Delete(ctx, key); err != nil {
		return kvErr("delete "+c.kind+" "+id, err)
	}
	return nil
}

// List returns every record of the collection that keep accepts (nil
// keeps all), in key order: one pass over the bucket's current values.
func (c *Collection[T]) List(ctx context.Context, keep func(T) bool) ([]T, error) {
	w, err := c.inv.records.WatchFiltered(ctx, []string{c.kind + ".>"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, kvErr("list "+c.kind, err)
	}
	defer func() { _ = w.Stop() }()
	type keyed struct {
		key string
		rec T
	}
	var all []keyed
	for {
		select {
		case <-ctx.Done():
			return nil, kvErr("list "+c.kind, context.Cause(ctx))
		case e, ok := <-w.Updates():
			if !ok {
				return nil, kvErr("list "+c.kind, errors.New("watch ended early"))
			}
			if e == nil { // every current value has been delivered
				sort.Slice(all, func(i, j int) bool { return all[i].key < all[j].key })
				out := make([]T, 0, len(all))
				for _, k := range all {
					out = append(out, k.rec)
				}
				return out, nil
			}
			var rec T
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return nil, wire.Errorf(wire.CodeInternal, "transport: %s %s record does not decode: %w", c.kind, e.Key(), err)
			}
			if keep == nil || keep(rec) {
				all = append(all, keyed{e.Key(), rec})
			}
		}
	}
}

func (c *Collection[T]) uniqueKey(field, value string) string {
	return "uniq." + c.kind + "." + field + "." + hex.EncodeToString([]byte(value))
}

// Claim takes value (a name, an address) as unique for field among the
// collection's records, for record id: ErrExists (conflict) when another
// record holds it. Claiming a value the same record holds succeeds.
func (c *Collection[T]) Claim(ctx context.Context, field, value, id string) error {
	key := c.uniqueKey(field, value)
	_, err := c.inv.index.Create(ctx, key, []byte(id))
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return kvErr("claim "+c.kind+" "+field, err)
	}
	e, err := c.inv.index.Get(ctx, key)
	if err != nil {
		return kvErr("claim "+c.kind+" "+field, err)
	}
	if string(e.Value()) == id {
		return nil
	}
	return wire.Errorf(wire.CodeConflict, "%w: %s %s %q is taken by %s", ErrExists, c.kind, field, value, e.Value())
}

// Owner returns the ID of the record holding value for field, or
// ErrNotFound: a lookup by name.
func (c *Collection[T]) Owner(ctx context.Context, field, value string) (string, error) {
	e, err := c.inv.index.Get(ctx, c.uniqueKey(field, value))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", notFound(c.kind+" with "+field, value)
	}
	if err != nil {
		return "", kvErr("look up "+c.kind+" "+field, err)
	}
	return string(e.Value()), nil
}

// Release gives value back if record id still holds it.
func (c *Collection[T]) Release(ctx context.Context, field, value, id string) {
	key := c.uniqueKey(field, value)
	e, err := c.inv.index.Get(ctx, key)
	if err != nil || string(e.Value()) != id {
		return
	}
	if err := c.inv.index.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		c.inv.log.Warn("cannot release a unique value", "kind", c.kind, "field", field, "err", err)
	}
}
