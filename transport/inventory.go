package transport

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ironfleet/ironfleet/internal/provision"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// KV buckets of the node inventory.
const (
	// NodesBucket holds one wire.Node (JSON) per key, the key being the node UUID.
	NodesBucket = "ifl_nodes"
	// PortsBucket holds one wire.Port (JSON) per key, the key being the port UUID.
	PortsBucket = "ifl_ports"
	// IndexBucket holds the unique indexes: "mac.<12 hex digits>" → the
	// port and node owning that MAC, "name.<hex of the name>" → node UUID,
	// "portname.<hex of the name>" → port UUID.
	IndexBucket = "ifl_index"
)

// Inventory errors. Each is returned wrapped in a *wire.Error with the code
// in its comment, so both errors.Is and wire.CodeOf work.
var (
	// ErrNotFound: no such node or port (not_found).
	ErrNotFound = errors.New("transport: not found")
	// ErrExists: a node name, node UUID, port UUID or MAC already taken (conflict).
	ErrExists = errors.New("transport: already exists")
	// ErrMACTaken: the MAC of a port written is another port's (conflict);
	// it comes wrapped with ErrExists, and tells a MAC collision from a
	// port name's.
	ErrMACTaken = errors.New("transport: MAC address taken")
	// ErrStaleFence: a write carrying a fencing token older than the last
	// one the node accepted (conflict). The writer has lost the node's lock.
	ErrStaleFence = errors.New("transport: stale fencing token")
	// ErrFenceRequired: a lock-free write (fence 0) tried to change a field
	// only the lock holder may write (conflict).
	ErrFenceRequired = errors.New("transport: field needs the node lock")
	// ErrCASExhausted: the compare-and-set lost to concurrent writers more
	// times than InventoryConfig.CASRetries allows (conflict).
	ErrCASExhausted = errors.New("transport: too many concurrent writers")
	// ErrInvalid: a record that cannot be stored as given (invalid_input).
	ErrInvalid = errors.New("transport: invalid record")
)

// InventoryConfig configures the node inventory. Every zero value means the
// documented default.
type InventoryConfig struct {
	// Replicas of the KV buckets; 0 means DefaultReplicas.
	Replicas int
	// History is how many revisions per key the buckets keep; 0 means 1.
	History int
	// CASRetries bounds how often UpdateNode and UpdatePort re-read and
	// re-apply after losing a compare-and-set; 0 means 20.
	CASRetries int
	// WatchRestartDelay is the pause before the cache re-watches a bucket
	// whose watch ended or stalled; 0 means 200ms.
	WatchRestartDelay time.Duration
	// StallCheckEvery is how often the cache compares its revision with the
	// bucket's; a watch behind for two checks in a row is restarted. 0 means 5s.
	StallCheckEvery time.Duration
	// MaxRecordBytes caps the encoded size of one node or port record:
	// larger writes are refused with ErrTooLarge before anything is sent.
	// 0 (or more than the server carries) means what the server carries:
	// its max_payload, as the connection reports it, less RecordHeadroom
	// (1 MiB − 1 KiB with NATS's default max_payload).
	MaxRecordBytes int
	// ConfirmMissingTimeout bounds how long a node the store answers as
	// missing waits for the cache to catch up with the store before the
	// answer is trusted (confirmMissing); past it the read is unavailable,
	// not a 404. 0 means DefaultConfirmMissingTimeout.
	ConfirmMissingTimeout time.Duration
	// Logger receives watch restarts; nil means none.
	Logger *slog.Logger
}

// RecordHeadroom is what a record leaves of the server's max_payload for
// the headers of a KV write (the expected revision, …).
const RecordHeadroom = 1 << 10

// defaultMaxPayload is NATS's default max_payload, for a connection that
// does not report one.
const defaultMaxPayload = 1 << 20

func (c *InventoryConfig) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = DefaultReplicas
	}
	if c.History <= 0 {
		c.History = 1
	}
	if c.CASRetries <= 0 {
		c.CASRetries = 20
	}
	if c.WatchRestartDelay <= 0 {
		c.WatchRestartDelay = 200 * time.Millisecond
	}
	if c.StallCheckEvery <= 0 {
		c.StallCheckEvery = 5 * time.Second
	}
	if c.ConfirmMissingTimeout <= 0 {
		c.ConfirmMissingTimeout = DefaultConfirmMissingTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Inventory is the node inventory: node and port records in JetStream KV
// with unique name and MAC indexes, fenced compare-and-set updates, and an
// in-memory cache fed by KV watches for readers. Close stops the watches.
type Inventory struct {
	cfg   InventoryConfig
	log   *slog.Logger
	conn  *nats.Conn
	nodes jetstream.KeyValue
	ports jetstream.KeyValue
	index jetstream.KeyValue
	// records holds the other kinds of record (Collection).
	records jetstream.KeyValue
	cache   *cache

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewInventory creates or updates the inventory's buckets, starts the cache's
// watches and returns once the cache holds every record. Close it when done.
func NewInventory(ctx context.Context, js jetstream.JetStream, cfg InventoryConfig) (*Inventory, error) {
	if js == nil {
		return nil, errors.New("transport: NewInventory: nil JetStream")
	}
	cfg.setDefaults()
	if cfg.History > 64 {
		return nil, fmt.Errorf("transport: InventoryConfig.History %d: at most 64", cfg.History)
	}
	inv := &Inventory{cfg: cfg, log: cfg.Logger, conn: js.Conn()}
	for _, b := range []struct {
		kv   *jetstream.KeyValue
		name string
		desc string
	}{
		{&inv.nodes, NodesBucket, "ironfleet node records"},
		{&inv.ports, PortsBucket, "ironfleet ports"},
		{&inv.index, IndexBucket, "ironfleet unique indexes: MAC, node name, and Collection values"},
		{&inv.records, RecordsBucket, "ironfleet records other than nodes and ports"},
	} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      b.name,
			Description: b.desc,
			History:     uint8(cfg.History), //nolint:gosec // checked ≤ 64
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("transport: ensure bucket %s: %w", b.name, err)
		}
		if cfg.Replicas > 1 {
			if kv, err = readFromLeader(js, kv); err != nil {
				return nil, fmt.Errorf("transport: ensure bucket %s: %w", b.name, err)
			}
		}
		*b.kv = kv
	}
	inv.cache = newCache()
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	inv.cancel = cancel
	ready := make(chan struct{}, 2)
	inv.wg.Go(func() { inv.watch(wctx, inv.nodes, ready) })
	inv.wg.Go(func() { inv.watch(wctx, inv.ports, ready) })
	for range 2 {
		select {
		case <-ready:
		case <-ctx.Done():
			inv.Close()
			return nil, fmt.Errorf("transport: inventory cache not loaded: %w", context.Cause(ctx))
		}
	}
	return inv, nil
}

// MaxRecordBytes is the largest node or port record, encoded, that the
// inventory stores (InventoryConfig.MaxRecordBytes).
func (inv *Inventory) MaxRecordBytes() int {
	payload := defaultMaxPayload
	if inv.conn != nil && inv.conn.MaxPayload() > 0 {
		payload = int(inv.conn.MaxPayload())
	}
	limit := payload - RecordHeadroom
	if c := inv.cfg.MaxRecordBytes; c > 0 && c < limit {
		return c
	}
	return limit
}

// encode is a record as stored: JSON, refused with ErrTooLarge above
// MaxRecordBytes, so that an oversized record fails as bad input before
// any write (a claimed name or MAC included) rather than at the server.
func (inv *Inventory) encode(kind, id string, rec any) ([]byte, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w: %s %s: %w", ErrInvalid, kind, id, err)
	}
	if limit := inv.MaxRecordBytes(); len(data) > limit {
		return nil, wire.Errorf(wire.CodeInvalidInput, "%w: %s %s would be %d bytes; the inventory stores records of at most %d bytes",
			ErrTooLarge, kind, id, len(data), limit)
	}
	return data, nil
}

// Close stops the cache's watches and waits for them.
func (inv *Inventory) Close() {
	inv.cancel()
	inv.wg.Wait()
}

// NodeKey is the KV key of a node: its UUID, which must be 1 to 64 letters,
// digits, '-' or '_'.
func nodeKey(uuid string) (string, error) {
	if err := checkToken("node uuid", uuid); err != nil {
		return "", wire.Errorf(wire.CodeInvalidInput, "%w: %w", ErrInvalid, err)
	}
	return uuid, nil
}

// staleIndexAfter is how old a name index entry whose node does not carry
// the name must be before another node may take the name over.
const staleIndexAfter = 10 * time.Second

func nameKey(name string) string { return "name." + hex.EncodeToString([]byte(name)) }

func portNameKey(name string) string { return "portname." + hex.EncodeToString([]byte(name)) }

func macKey(mac string) string { return "mac." + strings.ReplaceAll(mac, ":", "") }

// NormalizeMAC parses a 48-bit MAC address in any form net.ParseMAC accepts
// and returns it lower case and colon-separated, as ports store it.
func NormalizeMAC(mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return "", wire.Errorf(wire.CodeInvalidInput, "%w: MAC address %q: want 6 bytes like 52:54:00:12:34:56", ErrInvalid, mac)
	}
	return hw.String(), nil
}

func notFound(what, id string) error {
	return wire.Errorf(wire.CodeNotFound, "%w: %s %s", ErrNotFound, what, id)
}

func kvErr(op string, err error) error {
	return wire.Errorf(wire.CodeUnavailable, "transport: %s: %w", op, err)
}

// Get reads a node from the KV bucket (not the cache): the authoritative
// record. A node the bucket answers as missing is ErrNotFound only once the
// cache, caught up with the bucket, agrees (confirmMissing); if the cache
// holds it, Get answers the cache's copy, which is then as new as the store's.
func (inv *Inventory) Get(ctx context.Context, uuid string) (wire.Node, error) {
	n, _, err := inv.getNode(ctx, uuid)
	return n, err
}

// getNode is Get with the record's revision; the revision is 0 when the
// node came from the cache because the store would not read it.
func (inv *Inventory) getNode(ctx context.Context, uuid string) (wire.Node, uint64, error) {
	key, err := nodeKey(uuid)
	if err != nil {
		return wire.Node{}, 0, err
	}
	n, rev, err := getRecord[wire.Node](ctx, inv.nodes, key, "node", uuid)
	if !errors.Is(err, ErrNotFound) {
		return n, rev, err
	}
	cached, ok, err := inv.confirmMissing(ctx, uuid)
	if !ok {
		return wire.Node{}, 0, err
	}
	if n, rev, err := getRecord[wire.Node](ctx, inv.nodes, key, "node", uuid); err == nil {
		return n, rev, nil
	}
	return cached, 0, nil
}

// getRecord reads one JSON record and its revision from kv, mapping a
// missing or deleted key to ErrNotFound and a record that does not decode
// to CodeInternal.
func getRecord[T any](ctx context.Context, kv jetstream.KeyValue, key, kind, id string) (T, uint64, error) {
	var rec T
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return rec, 0, notFound(kind, id)
	}
	if err != nil {
		return rec, 0, kvErr("get "+kind+" "+id, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, wire.Errorf(wire.CodeInternal, "transport: %s %s record does not decode: %w", kind, id, err)
	}
	return rec, e.Revision(), nil
}

// NodeByName reads the node with a name through the name index.
func (inv *Inventory) NodeByName(ctx context.Context, name string) (wire.Node, error) {
	if name == "" {
		return wire.Node{}, notFound("node named", `""`)
	}
	e, err := inv.index.Get(ctx, nameKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return wire.Node{}, notFound("node named", name)
	}
	if err != nil {
		return wire.Node{}, kvErr("get name index", err)
	}
	n, err := inv.Get(ctx, string(e.Value()))
	if err == nil && n.Name != name {
		// The index outlived a rename that did not finish cleaning up.
		return wire.Node{}, notFound("node named", name)
	}
	return n, err
}

// CreateNode stores a new node. An empty UUID gets a random one, an empty
// ProvisionState is enroll, CreatedAt is now and Fence 0. The name, when
// set, must be unique (ErrExists). It returns the stored record.
func (inv *Inventory) CreateNode(ctx context.Context, n wire.Node) (wire.Node, error) {
	if n.UUID == "" {
		n.UUID = wire.NewUUID()
	}
	key, err := nodeKey(n.UUID)
	if err != nil {
		return wire.Node{}, err
	}
	if n.ProvisionState == wire.StateNone {
		n.ProvisionState = wire.StateEnroll
	}
	n.CreatedAt = time.Now().UTC()
	n.UpdatedAt = time.Time{}
	n.Fence = 0
	n.Reservation = ""
	data, err := inv.encode("node", n.UUID, n)
	if err != nil {
		return wire.Node{}, err
	}
	if n.Name != "" {
		if err := inv.claimName(ctx, n.Name, n.UUID); err != nil {
			return wire.Node{}, err
		}
	}
	if _, err := inv.nodes.Create(ctx, key, data); err != nil {
		if n.Name != "" {
			inv.releaseName(ctx, n.Name, n.UUID)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return wire.Node{}, wire.Errorf(wire.CodeConflict, "%w: node %s", ErrExists, n.UUID)
		}
		return wire.Node{}, kvErr("create node", err)
	}
	return n, nil
}

// claimName creates the node name index entry, or fails with ErrExists.
// An entry pointing at a node that no longer has that name is stale and
// taken over.
func (inv *Inventory) claimName(ctx context.Context, name, uuid string) error {
	return inv.claimIndex(ctx, nameKey(name), uuid, "node name "+strconv.Quote(name), func(owner string) bool {
		on, _, err := inv.getNode(ctx, owner)
		return !errors.Is(err, ErrNotFound) && (err != nil || on.Name == name)
	})
}

// claimPortName is claimName for a port's name.
func (inv *Inventory) claimPortName(ctx context.Context, name, uuid string) error {
	return inv.claimIndex(ctx, portNameKey(name), uuid, "port name "+strconv.Quote(name), func(owner string) bool {
		op, _, err := inv.getPort(ctx, owner)
		return !errors.Is(err, ErrNotFound) && (err != nil || op.Name == name)
	})
}

// claimIndex creates a unique index entry key → id, or fails with
// ErrExists naming what. An entry whose owner no longer holds the value
// (held says whether it does; a record that cannot be read holds it) is
// stale, and taken over once old enough that it cannot be a create or
// rename still under way.
func (inv *Inventory) claimIndex(ctx context.Context, key, id, what string, held func(owner string) bool) error {
	for range 3 {
		_, err := inv.index.Create(ctx, key, []byte(id))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return kvErr("claim "+what, err)
		}
		e, gerr := inv.index.Get(ctx, key)
		if errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted) {
			continue
		}
		if gerr != nil {
			return kvErr("claim "+what, gerr)
		}
		owner := string(e.Value())
		if owner == id {
			return nil
		}
		if held(owner) || time.Since(e.Created()) <= staleIndexAfter {
			return wire.Errorf(wire.CodeConflict, "%w: %s is taken by %s", ErrExists, what, owner)
		}
		if _, err := inv.index.Update(ctx, key, []byte(id), e.Revision()); err == nil {
			return nil
		}
	}
	return wire.Errorf(wire.CodeConflict, "%w: %s: %w", ErrExists, what, ErrCASExhausted)
}

// releaseName removes the node name index entry if it still points at uuid.
func (inv *Inventory) releaseName(ctx context.Context, name, uuid string) {
	inv.releaseIndex(ctx, nameKey(name), uuid, "node name")
}

// releasePortName removes the port name index entry, if any, if it still
// points at uuid.
func (inv *Inventory) releasePortName(ctx context.Context, name, uuid string) {
	if name != "" {
		inv.releaseIndex(ctx, portNameKey(name), uuid, "port name")
	}
}

// releaseIndex deletes the index entry key if it still points at id; a
// failure leaves a stale entry that the next claim takes over.
func (inv *Inventory) releaseIndex(ctx context.Context, key, id, what string) {
	e, err := inv.index.Get(ctx, key)
	if err != nil || string(e.Value()) != id {
		return
	}
	if err := inv.index.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		inv.log.Warn("cannot release "+what+"; the next claim takes it over", "key", key, "err", err)
	}
}

// UpdateNode reads node uuid, applies fn to a copy and writes it back by
// compare-and-set on the KV revision. When another writer got there first it
// re-reads and re-applies fn to the fresh record (so fn may run more than
// once and must only mutate the node it is given); it never overwrites
// blindly.
//
// Fencing: a fence > 0 is the node lock's fencing token. It is rejected with
// ErrStaleFence when lower than the node's Fence; otherwise the write is
// accepted and Fence raised to it. A fence of 0 is a lock-free write
// (ironfleet's own writers, the API included, all fence): accepted, never
// raising Fence, but it may not change the fields the lock holder owns
// (provision.HolderOnlyChange; ErrFenceRequired). Because every write is a CAS on the
// revision it was computed from, a lock-free write cannot undo a fenced one
// or the other way round.
//
// UUID and CreatedAt cannot change; UpdatedAt is set. A changed Name is
// claimed in the name index first (ErrExists when taken). fn's error is
// returned as is (wrapped) and nothing is written.
func (inv *Inventory) UpdateNode(ctx context.Context, uuid string, fence uint64, fn func(*wire.Node) error) (wire.Node, error) {
	key, err := nodeKey(uuid)
	if err != nil {
		return wire.Node{}, err
	}
	for range inv.cfg.CASRetries {
		e, err := inv.nodes.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			// Only the cache, caught up, can say the node is missing.
			if _, ok, cerr := inv.confirmMissing(ctx, uuid); !ok {
				return wire.Node{}, cerr
			}
			e, err = inv.nodes.Get(ctx, key)
		}
		if err != nil {
			return wire.Node{}, kvErr("get node "+uuid, err)
		}
		var old, n wire.Node
		if err := json.Unmarshal(e.Value(), &old); err != nil {
			return wire.Node{}, wire.Errorf(wire.CodeInternal, "transport: node %s record does not decode: %w", uuid, err)
		}
		_ = json.Unmarshal(e.Value(), &n) // a deep copy for fn
		if fence > 0 && fence < old.Fence {
			return wire.Node{}, wire.Errorf(wire.CodeConflict, "%w: node %s: token %d is older than %d", ErrStaleFence, uuid, fence, old.Fence)
		}
		if err := fn(&n); err != nil {
			return wire.Node{}, fmt.Errorf("update node %s: %w", uuid, err)
		}
		if n.UUID != old.UUID || !n.CreatedAt.Equal(old.CreatedAt) {
			return wire.Node{}, wire.Errorf(wire.CodeInvalidInput, "%w: node %s: uuid and created_at cannot change", ErrInvalid, uuid)
		}
		if fence == 0 {
			if f := provision.HolderOnlyChange(old, n); f != "" {
				return wire.Node{}, wire.Errorf(wire.CodeConflict, "%w: node %s: %s changes only under the node lock", ErrFenceRequired, uuid, f)
			}
		} else {
			n.Fence = fence
		}
		n.Reservation = ""
		n.UpdatedAt = time.Now().UTC()
		data, err := inv.encode("node", uuid, n)
		if err != nil {
			return wire.Node{}, err
		}
		renamed := n.Name != old.Name
		if renamed && n.Name != "" {
			if err := inv.claimName(ctx, n.Name, uuid); err != nil {
				return wire.Node{}, err
			}
		}
		_, err = inv.nodes.Update(ctx, key, data, e.Revision())
		// An update with no answer, or refused as stale because the client
		// sent it again after the server had stored it, may be ours.
		if err != nil && inv.landed(ctx, key, e.Revision(), data) {
			err = nil
		}
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			if renamed && n.Name != "" {
				inv.releaseName(ctx, n.Name, uuid)
			}
			continue // someone else wrote: re-read, re-check the fence, re-apply
		}
		if err != nil {
			if renamed && n.Name != "" {
				inv.releaseName(ctx, n.Name, uuid)
			}
			return wire.Node{}, kvErr("update node "+uuid, err)
		}
		if renamed && old.Name != "" {
			inv.releaseName(ctx, old.Name, uuid)
		}
		return n, nil
	}
	return wire.Node{}, wire.Errorf(wire.CodeConflict, "%w: node %s after %d attempts", ErrCASExhausted, uuid, inv.cfg.CASRetries)
}

// DeleteNode deletes a node, its ports and their index entries. fence
// follows UpdateNode's rule: a stale token is rejected, 0 is accepted.
func (inv *Inventory) DeleteNode(ctx context.Context, uuid string, fence uint64) error {
	key, err := nodeKey(uuid)
	if err != nil {
		return err
	}
	n, rev, err := inv.getNode(ctx, uuid)
	if err == nil && rev == 0 {
		err = wire.Errorf(wire.CodeUnavailable, "transport: delete node %s: the store did not read the node the cache holds", uuid)
	}
	if err != nil {
		return err
	}
	if fence > 0 && fence < n.Fence {
		return wire.Errorf(wire.CodeConflict, "%w: node %s: token %d is older than %d", ErrStaleFence, uuid, fence, n.Fence)
	}
	if err := inv.nodes.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return wire.Errorf(wire.CodeConflict, "%w: node %s changed while being deleted; retry", ErrCASExhausted, uuid)
		}
		return kvErr("delete node "+uuid, err)
	}
	if n.Name != "" {
		inv.releaseName(ctx, n.Name, uuid)
	}
	// Ports: the cache, once it has seen the delete, has every port created
	// before it; CreatePort re-checks the node after writing, covering the rest.
	if err := inv.Sync(ctx); err != nil {
		return fmt.Errorf("delete node %s: ports: %w", uuid, err)
	}
	for _, p := range inv.cache.portsOf(uuid) {
		if err := inv.DeletePort(ctx, p.UUID); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete node %s: %w", uuid, err)
		}
	}
	return nil
}

type macEntry struct {
	Node string `json:"node"`
	Port string `json:"port"`
}

// CreatePort stores a new port of an existing node. An empty UUID gets a
// random one; the MAC is normalised and must be unique (ErrExists).
func (inv *Inventory) CreatePort(ctx context.Context, p wire.Port) (wire.Port, error) {
	if p.UUID == "" {
		p.UUID = wire.NewUUID()
	}
	if err := checkToken("port uuid", p.UUID); err != nil {
		return wire.Port{}, wire.Errorf(wire.CodeInvalidInput, "%w: %w", ErrInvalid, err)
	}
	mac, err := NormalizeMAC(p.Address)
	if err != nil {
		return wire.Port{}, err
	}
	p.Address = mac
	if _, err := inv.Get(ctx, p.NodeUUID); err != nil {
		return wire.Port{}, err
	}
	p.CreatedAt = time.Now().UTC()
	p.UpdatedAt = time.Time{}
	data, err := inv.encode("port", p.UUID, p)
	if err != nil {
		return wire.Port{}, err
	}
	if err := inv.claimMAC(ctx, mac, p.NodeUUID, p.UUID); err != nil {
		return wire.Port{}, err
	}
	if p.Name != "" {
		if err := inv.claimPortName(ctx, p.Name, p.UUID); err != nil {
			inv.releaseMAC(ctx, mac, p.UUID)
			return wire.Port{}, err
		}
	}
	if _, err := inv.ports.Create(ctx, p.UUID, data); err != nil {
		inv.releaseMAC(ctx, mac, p.UUID)
		inv.releasePortName(ctx, p.Name, p.UUID)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return wire.Port{}, wire.Errorf(wire.CodeConflict, "%w: port %s", ErrExists, p.UUID)
		}
		return wire.Port{}, kvErr("create port", err)
	}
	// The node may have been deleted meanwhile: then so is this port.
	if _, err := inv.Get(ctx, p.NodeUUID); errors.Is(err, ErrNotFound) {
		_ = inv.DeletePort(ctx, p.UUID)
		return wire.Port{}, err
	}
	return p, nil
}

func (inv *Inventory) claimMAC(ctx context.Context, mac, node, port string) error {
	v, _ := json.Marshal(macEntry{Node: node, Port: port})
	_, err := inv.index.Create(ctx, macKey(mac), v)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return wire.Errorf(wire.CodeConflict, "%w: %w: MAC %s is already a port", ErrExists, ErrMACTaken, mac)
	}
	if err != nil {
		return kvErr("claim MAC", err)
	}
	return nil
}

func (inv *Inventory) releaseMAC(ctx context.Context, mac, port string) {
	e, err := inv.index.Get(ctx, macKey(mac))
	if err != nil {
		return
	}
	var me macEntry
	if json.Unmarshal(e.Value(), &me) != nil || me.Port != port {
		return
	}
	if err := inv.index.Delete(ctx, macKey(mac), jetstream.LastRevision(e.Revision())); err != nil {
		inv.log.Warn("cannot release MAC index entry", "mac", mac, "err", err)
	}
}

// GetPort reads a port from the KV bucket.
func (inv *Inventory) GetPort(ctx context.Context, uuid string) (wire.Port, error) {
	p, _, err := inv.getPort(ctx, uuid)
	return p, err
}

func (inv *Inventory) getPort(ctx context.Context, uuid string) (wire.Port, uint64, error) {
	if err := checkToken("port uuid", uuid); err != nil {
		return wire.Port{}, 0, wire.Errorf(wire.CodeInvalidInput, "%w: %w", ErrInvalid, err)
	}
	return getRecord[wire.Port](ctx, inv.ports, uuid, "port", uuid)
}

// UpdatePort applies fn to port uuid by compare-and-set, like UpdateNode
// without fencing (ports are the API's). A changed MAC is claimed first
// (ErrExists when taken); UUID, NodeUUID and CreatedAt cannot change.
func (inv *Inventory) UpdatePort(ctx context.Context, uuid string, fn func(*wire.Port) error) (wire.Port, error) {
	for range inv.cfg.CASRetries {
		old, rev, err := inv.getPort(ctx, uuid)
		if err != nil {
			return wire.Port{}, err
		}
		p := old
		p.Extra = cloneMap(old.Extra)
		if err := fn(&p); err != nil {
			return wire.Port{}, fmt.Errorf("update port %s: %w", uuid, err)
		}
		if p.UUID != old.UUID || p.NodeUUID != old.NodeUUID || !p.CreatedAt.Equal(old.CreatedAt) {
			return wire.Port{}, wire.Errorf(wire.CodeInvalidInput, "%w: port %s: uuid, node_uuid and created_at cannot change", ErrInvalid, uuid)
		}
		if p.Address, err = NormalizeMAC(p.Address); err != nil {
			return wire.Port{}, err
		}
		p.UpdatedAt = time.Now().UTC()
		data, err := inv.encode("port", uuid, p)
		if err != nil {
			return wire.Port{}, err
		}
		moved := p.Address != old.Address
		if moved {
			if err := inv.claimMAC(ctx, p.Address, p.NodeUUID, p.UUID); err != nil {
				return wire.Port{}, err
			}
		}
		renamed := p.Name != old.Name
		if renamed && p.Name != "" {
			if err := inv.claimPortName(ctx, p.Name, p.UUID); err != nil {
				if moved {
					inv.releaseMAC(ctx, p.Address, p.UUID)
				}
				return wire.Port{}, err
			}
		}
		undo := func() {
			if moved {
				inv.releaseMAC(ctx, p.Address, p.UUID)
			}
			if renamed {
				inv.releasePortName(ctx, p.Name, p.UUID)
			}
		}
		_, err = inv.ports.Update(ctx, uuid, data, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			undo()
			continue
		}
		if err != nil {
			undo()
			return wire.Port{}, kvErr("update port "+uuid, err)
		}
		if moved {
			inv.releaseMAC(ctx, old.Address, p.UUID)
		}
		if renamed {
			inv.releasePortName(ctx, old.Name, p.UUID)
		}
		return p, nil
	}
	return wire.Port{}, wire.Errorf(wire.CodeConflict, "%w: port %s after %d attempts", ErrCASExhausted, uuid, inv.cfg.CASRetries)
}

// DeletePort deletes a port and its MAC index entry.
func (inv *Inventory) DeletePort(ctx context.Context, uuid string) error {
	p, rev, err := inv.getPort(ctx, uuid)
	if err != nil {
		return err
	}
	if err := inv.ports.Delete(ctx, uuid, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return wire.Errorf(wire.CodeConflict, "%w: port %s changed while being deleted; retry", ErrCASExhausted, uuid)
		}
		return kvErr("delete port "+uuid, err)
	}
	inv.releaseMAC(ctx, p.Address, uuid)
	inv.releasePortName(ctx, p.Name, uuid)
	return nil
}

// PortByName reads the port with a name through the name index.
func (inv *Inventory) PortByName(ctx context.Context, name string) (wire.Port, error) {
	if name == "" {
		return wire.Port{}, notFound("port named", `""`)
	}
	e, err := inv.index.Get(ctx, portNameKey(name))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return wire.Port{}, notFound("port named", name)
	}
	if err != nil {
		return wire.Port{}, kvErr("get port name index", err)
	}
	p, err := inv.GetPort(ctx, string(e.Value()))
	if err == nil && p.Name != name {
		return wire.Port{}, notFound("port named", name)
	}
	return p, err
}

// PortByMAC reads the port with a MAC (any form NormalizeMAC accepts)
// through the MAC index.
func (inv *Inventory) PortByMAC(ctx context.Context, mac string) (wire.Port, error) {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return wire.Port{}, err
	}
	e, err := inv.index.Get(ctx, macKey(m))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return wire.Port{}, notFound("port with MAC", m)
	}
	if err != nil {
		return wire.Port{}, kvErr("get MAC index", err)
	}
	var me macEntry
	if err := json.Unmarshal(e.Value(), &me); err != nil {
		return wire.Port{}, wire.Errorf(wire.CodeInternal, "transport: MAC index %s does not decode: %w", m, err)
	}
	return inv.GetPort(ctx, me.Port)
}

// NodeByMAC finds the node owning a port with this MAC (any form
// NormalizeMAC accepts), through the MAC index: the agent's lookup.
func (inv *Inventory) NodeByMAC(ctx context.Context, mac string) (wire.Node, error) {
	m, err := NormalizeMAC(mac)
	if err != nil {
		return wire.Node{}, err
	}
	e, err := inv.index.Get(ctx, macKey(m))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return wire.Node{}, notFound("port with MAC", m)
	}
	if err != nil {
		return wire.Node{}, kvErr("get MAC index", err)
	}
	var me macEntry
	if err := json.Unmarshal(e.Value(), &me); err != nil {
		return wire.Node{}, wire.Errorf(wire.CodeInternal, "transport: MAC index %s does not decode: %w", m, err)
	}
	return inv.Get(ctx, me.Node)
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}
