// Package lock is ironfleet's fair, patient node lock on Redis, with
// race-free handoff to a ticket and fencing tokens.
package lock
