package wire

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// NewUUID returns a random (version 4) UUID, the form of node UUIDs and of
// task and event IDs.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// NewTask mints a task envelope: a fresh ID (the JetStream message ID, which
// every redelivery of the task shares), this build's version and the time
// now. It is the only place envelopes are made; the publisher adds a Ticket
// and FirstMove when it hands the node's lock to the task.
func NewTask(op Operation, n Node, requestedBy string, params json.RawMessage) Task {
	return Task{
		Version: TaskVersion, ID: NewUUID(), Node: n.UUID, Op: op, Group: n.ConductorGroup,
		RequestedBy: requestedBy, CreatedAt: time.Now().UTC(), Params: params,
	}
}

// NewEvent mints an event of type typ about node: a fresh ID (its message
// ID), this build's version and the time now. The caller fills in the rest.
func NewEvent(typ EventType, node string) Event {
	return Event{Version: EventVersion, ID: NewUUID(), Type: typ, Time: time.Now().UTC(), Node: node}
}

// TaskEvent mints an event of type typ about task t: NewEvent with the
// task's node, ID and operation.
func TaskEvent(typ EventType, t Task) Event {
	ev := NewEvent(typ, t.Node)
	ev.Task, ev.Op = t.ID, t.Op
	return ev
}
