// Package transport owns everything that crosses the network between the
// api, the conductors and event subscribers: the NATS JetStream task bus,
// the event stream, the node inventory and the conductor registry, plus the
// embedded NATS server that `ironfleet dev` runs in-process. The value types
// themselves (task envelope, event, node, port, error codes) live in
// package wire, which imports nothing of ours.
//
// # Connecting
//
// Connect dials external servers (URLs, credentials file, nkey, user/password
// or token, TLS) with a bounded number of attempts and exponential backoff,
// so an unreachable NATS at start is a clear ErrUnreachable, not a hang.
// Once connected the client reconnects forever and buffers publishes, so
// publishers and consumers resume by themselves after a server restart.
// StartEmbedded runs a server in-process; its SyncInterval defaults to
// fsync on every write (see "Durability" below).
//
// # Subjects and streams
//
//	ifl.tasks.<group>.<op>     TASKS   work queue, file storage, dedup window
//	ifl.events.<node>.<type>   EVENTS  limits retention, MaxAge (default 7 days)
//
// The default conductor group "" is the subject token "default" (so "" and
// "default" are the same group). Groups, operations and node UUIDs must be
// letters, digits, '-' and '_'. An event type's dots become subject tokens
// (ifl.events.<uuid>.node.power_state); events about no node use "_".
//
// NewBus creates or updates both streams idempotently, and one durable pull
// consumer per conductor group, "tasks-<group>", filtered on
// ifl.tasks.<group>.>, shared by every conductor of the group (JetStream
// hands each task to one of them). AckWait (30s), MaxDeliver (5), BackOff
// (none) and MaxAckPending (1000) are BusConfig fields. Mind that a BackOff
// schedule replaces AckWait for every delivery, including the first: the
// in-progress interval follows the shortest step.
//
// # Publishing and deduplication
//
// Bus.Publish encodes the versioned envelope, rejects a task over
// MaxTaskBytes (ErrTooLarge) or with bad fields, publishes it with the task
// ID as Nats-Msg-Id, waits for JetStream's ack and returns the stream
// sequence. Republishing a task ID within BusConfig.Duplicates (default
// 2 minutes) stores nothing new and returns the first sequence, so a caller
// that timed out may simply publish again.
//
// # Consuming: outcome → acknowledgement
//
// Bus.Consume runs a Handler on a group's tasks until its context ends:
//
//	handler returns          JetStream gets
//	Done()                   Ack
//	Retry(delay, err)        NakWithDelay(delay, or RetryDelays[n-1]: 1s, 5s, 30s)
//	Retry on last delivery   task.dead event, then Term
//	Fail(err)                task.dead event, then Term
//	still running            InProgress every InProgressEvery (⅓ of the ack wait)
//	panics                   as Retry with code internal
//	ctx ended (shutdown)     Nak, so another conductor takes it at once
//	                         (on the last delivery: task.dead, then Term)
//
// Before the handler, a message larger than MaxTaskBytes, of an unknown
// envelope version (wire.CodeUnknownVersion) or that does not decode
// (wire.CodeDecode) is terminated with a task.dead event giving the reason:
// never a crash loop, never silently dropped. If the task.dead event cannot
// be published the task is handed back (NakWithDelay) rather than
// terminated, so a task never vanishes without its event.
//
// Delivery is at least once, so handlers are idempotent by task ID. The
// loop helps: it remembers the IDs of tasks it completed (Remember, 10000)
// and acks a redelivery of one without running it again (its ack was lost,
// say in a server restart); and a redelivery of a task still running here
// (the ack wait passed) is marked in progress and left to the running copy.
// Acks are plain by default; ConfirmAcks waits for the server's
// confirmation at about half the throughput.
//
// # Events
//
// Bus.PublishEvent fills in ID, time and version, and publishes with the ID
// as message ID; Bus.EmitEvent does the same without waiting for the
// store's confirmation, which it checks off the caller's path (a failure is
// logged and counted, never silent). SubscribeEvents reads EVENTS through an ordered consumer —
// stored events since a time, then optionally following — filtered by node;
// it creates nothing durable. `ironfleet events` is built on it.
//
// # Node inventory
//
// Three KV buckets, file storage, History 1 by default:
//
//	ifl_nodes   <node uuid>            → wire.Node (JSON)
//	ifl_ports   <port uuid>            → wire.Port (JSON)
//	ifl_index   mac.<12 hex digits>    → {"node":…, "port":…}   (unique MAC)
//	            name.<hex of the name> → node uuid              (unique name)
//
// Uniqueness comes from KV Create on the index key, claimed before the
// record is written and released if that fails. A record larger than
// MaxRecordBytes (by default the server's max_payload less RecordHeadroom)
// is refused with ErrTooLarge (code invalid_input) before anything is
// claimed or written, rather than failing at the server as if it were down. Every update is a
// compare-and-set on the revision it was computed from: UpdateNode and
// UpdatePort re-read and re-apply the caller's function when another writer
// got there first (up to CASRetries), never last-writer-wins.
//
// Fencing: UpdateNode and DeleteNode take the node lock's fencing token. A
// token lower than the node's Fence is rejected with ErrStaleFence (code
// conflict): that writer has lost the lock. An accepted token becomes the
// node's Fence. Token 0 means "no lock held" (ironfleet's own writers all
// hold the node's lock, the API included): accepted, never raising Fence,
// and refused with ErrFenceRequired if they change a field the lock holder
// owns
// (provision_state, target_provision_state, power_state, target_power_state,
// step, conductor, fence). Since both kinds of write are CAS on the revision
// they read, neither can undo the other.
//
// The cache watches ifl_nodes and ifl_ports and serves List (filter by
// provision state, driver, conductor group, maintenance, associated; sort;
// marker/limit pages), Node and Ports from memory. List pages from an index
// the cache keeps beside the nodes (a B-tree per sort key, and one per value
// of each equality filter in creation order): it walks from the marker and
// stops at the limit, so a page costs its own size, not the inventory's
// (nodeindex.go). Whenever a watch ends or
// falls behind the bucket for two checks in a row (StallCheckEvery) it is
// restarted and the cache reloaded from a full snapshot, so it converges
// after reconnects and server restarts whatever it missed. Sync waits until
// the cache reflects every write stored when it was called:
// read-your-writes for a reader that just wrote, in this or any process.
//
// # Conductor registry
//
// Registry.Register writes a ConductorInfo into the ifl_conductors bucket
// and rewrites it every KeepAlive (10s) until its context ends, then deletes
// it. Conductors lists the records with Alive = last keepalive within
// OfflineAfter (60s). The bucket's TTL (Forget, 24h) removes long-dead ones.
//
// # Durability
//
// JetStream acknowledges a write once it is in the file store; when that is
// fsynced is a server setting (sync_interval), not a per-stream one. The
// inventory is the fleet's source of truth, so ironfleet runs its embedded
// server with fsync on every write (EmbeddedConfig.SyncInterval 0), and
// external clusters should set `sync_interval: always` (or accept losing the
// last interval's acknowledged writes on a machine crash; on an R3 cluster a
// write acknowledged by a quorum also survives one node's loss). The cost is
// one disk flush per write: see `ironfleet bench bus --sync-interval`.
//
// # Errors
//
// Errors callers branch on are sentinels (ErrNotFound, ErrExists,
// ErrStaleFence, ErrFenceRequired, ErrCASExhausted, ErrInvalid,
// ErrTooLarge, ErrUnknownVersion, ErrDecode, ErrUnreachable), returned
// inside a *wire.Error whose Code crosses the wire: errors.Is and
// wire.CodeOf both work.
package transport
