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
}
