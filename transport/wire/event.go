package wire

import "time"

// EventVersion is the version of the event envelope this code writes and reads.
const EventVersion = 1

// EventType says what happened.
type EventType string

// Event types.
const (
	EventProvisionState EventType = "node.provision_state" // From/To are provision states
	EventPowerState     EventType = "node.power_state"     // From/To are power states
	EventTaskSucceeded  EventType = "task.succeeded"
	EventTaskFailed     EventType = "task.failed"
	// EventTaskDead: a task was terminated after its last delivery, or because
	// it could not be decoded; nothing vanishes without one of these.
	EventTaskDead    EventType = "task.dead"
	EventLockHandoff EventType = "lock.handoff"
	EventLockExpired EventType = "lock.expired"
	// The node's lock as the process that changed it reports it (Holder,
	// Purpose; internal/dispatch.LockEvents): granted, a waiter joined its
	// line or left it, the holder released it.
	EventLockAcquired EventType = "lock.acquired"
	EventLockQueued   EventType = "lock.queued"
	EventLockLeft     EventType = "lock.left"
	EventLockReleased EventType = "lock.released"
)

// Event is published on the event stream for subscribers.
type Event struct {
	Version   int       `json:"v"`
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	Time      time.Time `json:"time"`
	Node      string    `json:"node,omitempty"`
	Task      string    `json:"task,omitempty"`
	Op        Operation `json:"op,omitempty"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	Conductor string    `json:"conductor,omitempty"`
	Code      Code      `json:"code,omitempty"`
	Message   string    `json:"message,omitempty"`
	// Holder and Purpose name who took, waited for or let go of a node's
	// lock, and why (lock.* events).
	Holder  string `json:"holder,omitempty"`
	Purpose string `json:"purpose,omitempty"`
}
