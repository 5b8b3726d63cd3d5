package transport

import (
	"fmt"
	"strings"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Subject layout. Every subject ironfleet publishes starts with "ifl.".
const (
	// TasksStream is the work-queue stream holding tasks until a conductor acks them.
	TasksStream = "TASKS"
	// EventsStream is the limits-retention stream of events for subscribers.
	EventsStream = "EVENTS"

	tasksPrefix  = "ifl.tasks."
	eventsPrefix = "ifl.events."

	// DefaultGroup is the subject token of the default conductor group ("").
	DefaultGroup = "default"
	// noNode is the subject token of events that concern no node.
	noNode = "_"
)

// groupToken maps a conductor group onto its subject token: "" is
// DefaultGroup, anything else must be a valid token (letters, digits, '-', '_').
func groupToken(group string) (string, error) {
	if group == "" {
		return DefaultGroup, nil
	}
	if err := checkToken("conductor group", group); err != nil {
		return "", err
	}
	return group, nil
}

// checkToken accepts names usable as one subject token, consumer name or KV
// key part: ASCII letters, digits, '-' and '_', at most 64 bytes.
func checkToken(what, s string) error {
	if s == "" || len(s) > 64 {
		return wire.Errorf(wire.CodeInvalidInput, "transport: %s %q: want 1 to 64 characters", what, s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return wire.Errorf(wire.CodeInvalidInput, "transport: %s %q: only letters, digits, '-' and '_' are allowed", what, s)
		}
	}
	return nil
}

// TaskSubject is the subject a task for group and op is published on:
// ifl.tasks.<group>.<op>.
func TaskSubject(group string, op wire.Operation) (string, error) {
	g, err := groupToken(group)
	if err != nil {
		return "", err
	}
	if err := checkToken("operation", string(op)); err != nil {
		return "", err
	}
	return tasksPrefix + g + "." + string(op), nil
}

// groupFilter is the filter subject of a group's consumer: ifl.tasks.<group>.>.
func groupFilter(group string) (string, error) {
	g, err := groupToken(group)
	if err != nil {
		return "", err
	}
	return tasksPrefix + g + ".>", nil
}

// consumerName is the durable name of a group's shared pull consumer.
func consumerName(group string) (string, error) {
	g, err := groupToken(group)
	if err != nil {
		return "", err
	}
	return "tasks-" + g, nil
}

// EventSubject is the subject an event is published on:
// ifl.events.<node>.<type>, where node is "_" for events about no node and
// the type's dots become further tokens (ifl.events.<uuid>.node.power_state).
func EventSubject(ev wire.Event) (string, error) {
	node := ev.Node
	if node == "" {
		node = noNode
	} else if err := checkToken("event node", node); err != nil {
		return "", err
	}
	if ev.Type == "" {
		return "", wire.Errorf(wire.CodeInvalidInput, "transport: event without a type")
	}
	for _, part := range strings.Split(string(ev.Type), ".") {
		if err := checkToken("event type", part); err != nil {
			return "", fmt.Errorf("event type %q: %w", ev.Type, err)
		}
	}
	return eventsPrefix + node + "." + string(ev.Type), nil
}

// EventFilter is the subject filter matching the events of one node, or of
// every node when node is "".
func EventFilter(node string) (string, error) {
	if node == "" {
		return eventsPrefix + ">", nil
	}
	if err := checkToken("event node", node); err != nil {
		return "", err
	}
	return eventsPrefix + node + ".>", nil
}
