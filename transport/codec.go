package transport

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ironfleet/ironfleet/transport/wire"
)

// Sentinel errors of the codec. Each is wrapped in a *wire.Error carrying the
// stable code, so both errors.Is and wire.CodeOf work on what DecodeTask returns.
var (
	// ErrUnknownVersion: an envelope of a version this code does not read.
	ErrUnknownVersion = errors.New("transport: unknown envelope version")
	// ErrDecode: an envelope that is not valid JSON of the expected shape.
	ErrDecode = errors.New("transport: envelope does not decode")
	// ErrTooLarge: a message larger than the configured maximum.
	ErrTooLarge = errors.New("transport: message too large")
)

// EncodeTask validates t and encodes it as the JSON envelope of version
// wire.TaskVersion (a zero Version is filled in).
func EncodeTask(t wire.Task) ([]byte, error) {
	if err := validateTask(t); err != nil {
		return nil, err
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidInput, "transport: encode task %s: %w", t.ID, err)
	}
	return b, nil
}

// DecodeTask decodes and validates a task envelope. An envelope of another
// version fails with code wire.CodeUnknownVersion (ErrUnknownVersion), one
// that does not decode or lacks required fields with wire.CodeDecode (ErrDecode).
func DecodeTask(data []byte) (wire.Task, error) {
	var t wire.Task
	if err := json.Unmarshal(data, &t); err != nil {
		// Another version may have changed a field's type: say so rather
		// than "does not decode" when the version says it is not ours.
		if v, ok := peekVersion(data); ok && v != wire.TaskVersion {
			return wire.Task{}, unknownTaskVersion(fmt.Sprint(v))
		}
		return wire.Task{}, wire.Errorf(wire.CodeDecode, "%w: %w", ErrDecode, err)
	}
	if t.Version != wire.TaskVersion {
		v := fmt.Sprint(t.Version)
		if t.Version == 0 {
			v = "none"
		}
		return wire.Task{}, unknownTaskVersion(v)
	}
	if err := validateTask(t); err != nil {
		return t, wire.Errorf(wire.CodeDecode, "%w: %w", ErrDecode, err)
	}
	return t, nil
}

func unknownTaskVersion(v string) error {
	return wire.Errorf(wire.CodeUnknownVersion, "%w: task version %s, this build reads %d", ErrUnknownVersion, v, wire.TaskVersion)
}

// peekVersion reads only the "v" field of an envelope.
func peekVersion(data []byte) (int, bool) {
	var probe struct {
		Version *int `json:"v"`
	}
	if json.Unmarshal(data, &probe) != nil || probe.Version == nil {
		return 0, false
	}
	return *probe.Version, true
}

func validateTask(t wire.Task) error {
	switch {
	case t.Version != wire.TaskVersion:
		return wire.Errorf(wire.CodeUnknownVersion, "%w: task version %d, this build writes %d", ErrUnknownVersion, t.Version, wire.TaskVersion)
	case t.ID == "" || len(t.ID) > 128:
		return wire.Errorf(wire.CodeInvalidInput, "transport: task id %q: want 1 to 128 bytes", t.ID)
	case t.Node == "":
		return wire.Errorf(wire.CodeInvalidInput, "transport: task %s: no node", t.ID)
	case t.Op == "":
		return wire.Errorf(wire.CodeInvalidInput, "transport: task %s: no operation", t.ID)
	}
	if _, err := TaskSubject(t.Group, t.Op); err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	return nil
}

// EncodeEvent encodes ev as the JSON envelope of version wire.EventVersion.
// Events are minted by wire.NewEvent; one without an ID or a time, or of
// another version, is refused.
func EncodeEvent(ev wire.Event) ([]byte, error) {
	switch {
	case ev.Version != wire.EventVersion:
		return nil, wire.Errorf(wire.CodeUnknownVersion, "%w: event version %d, this build writes %d", ErrUnknownVersion, ev.Version, wire.EventVersion)
	case ev.ID == "" || len(ev.ID) > 128:
		return nil, wire.Errorf(wire.CodeInvalidInput, "transport: event id %q: want 1 to 128 bytes", ev.ID)
	case ev.Time.IsZero():
		return nil, wire.Errorf(wire.CodeInvalidInput, "transport: event %s has no time", ev.ID)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInvalidInput, "transport: encode event: %w", err)
	}
	return b, nil
}

// DecodeEvent decodes an event envelope, with the same error codes as DecodeTask.
func DecodeEvent(data []byte) (wire.Event, error) {
	var ev wire.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, wire.Errorf(wire.CodeDecode, "%w: %w", ErrDecode, err)
	}
	if ev.Version != wire.EventVersion {
		return ev, wire.Errorf(wire.CodeUnknownVersion, "%w: event version %d, this build reads %d", ErrUnknownVersion, ev.Version, wire.EventVersion)
	}
	return ev, nil
}
