// Package api is ironfleet's HTTP surface: the Ironic-compatible REST API on
// Gin, the agent endpoints, the lock view, health and metrics. No other
// package serves HTTP for operators.
//
// # Building it
//
// New(Deps, Config) takes small interfaces declared here, which the real
// parts satisfy: *transport.Inventory (Nodes, Ports), *transport.Bus
// (Tasks), *lock.Locker (Locks), *transport.Registry (Conductors) and
// conductor.Drivers (DriverValidator). Serve runs it on a listener until its
// context ends; Handler is the http.Handler.
//
// # Reads and writes
//
// Reads come from the inventory's cache (a KV watch); a node's
// "reservation" is its lock holder, from one lock Snapshot (one Summary for a
// list). Writes are compare-and-set on the inventory or tasks. Every write
// of an existing node or of its ports (PATCH, maintenance, port create,
// update and delete, the agent token at lookup, DELETE) takes the node's
// lock in standard mode, as Ironic's conductor does (409 NodeLocked naming
// the holder), writes the node with the lock's fencing token and releases
// the lock (port records carry no fence: the node is written with the token
// first). Actions hand the lock to their task instead:
//
//	PUT …/states/provision, …/states/power, …/management/boot_device, …/management/inject_nmi:
//	  validate on the cached node (provision.Accept: 400 with Ironic's words;
//	  503 over the group's deploy or clean limit)
//	  → lock.Acquire standard mode, holder "api:<host>" (409 NodeLocked naming the holder)
//	  → re-read the node from the store
//	  → dispatch.Request: re-validate under the lock, make the first move
//	    (available → deploying …) with the lock's fencing token, publish the
//	    task with a fresh ticket, hand the lock to it (503, the move undone
//	    and the lock released if the publish fails)
//	  → 202, Location …/states
//
// internal/dispatch owns that sequence and says why publish comes before the
// handoff; the conductor's continuations go through the same code. After a
// DELETE the lock forgets the node (lock.Locker.Forget: its Redis keys go
// unless someone holds or waits). The API never holds a lock longer than
// one request.
//
// # Agent
//
// GET /v1/lookup?addresses=… finds the node by MAC, and only for nodes whose
// state expects an agent (provision.ExpectsAgent; others are 404, as
// Ironic's restricted lookup answers) issues a one-time agent token: its
// SHA-256 is stored under the node's lock (409 NodeLocked while a conductor
// holds it; the agent pauses and looks up again) with a compare-and-set that
// fails with 409 if a token was already issued (the conductor clears it when it boots the node into the
// agent again). POST /v1/heartbeat/{node} needs that token (none: 401, wrong:
// 403, logged without it) and publishes a heartbeat task without the lock.
//
// # Errors
//
// httpStatus is the one place errors become HTTP statuses; bodies follow
// Ironic: {"error_message": "<JSON-encoded {faultcode, faultstring, debuginfo}>"}.
//
// See README.md for microversions, fields, auth and the lock view.
package api
