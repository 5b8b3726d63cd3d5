package wire

import (
	"errors"
	"fmt"
)

// Code is a stable error code: it survives the wire, and callers branch on
// it (the API maps it to an HTTP status, events carry it) instead of on
// message text.
type Code string

// Error codes.
const (
	CodeInvalidInput      Code = "invalid_input"      // malformed or out-of-range input
	CodeNotFound          Code = "not_found"          // no such node, port, …
	CodeConflict          Code = "conflict"           // duplicate name/MAC, CAS lost, stale fence
	CodeInvalidTransition Code = "invalid_transition" // provision action not allowed in this state
	CodeNodeLocked        Code = "node_locked"        // the node's lock is held by someone else
	CodeBMC               Code = "bmc_error"          // the BMC failed or timed out
	CodeAgent             Code = "agent_error"        // the agent failed or is unreachable
	CodeTimeout           Code = "timeout"            // a wait state or action timed out
	CodeUnknownVersion    Code = "unknown_version"    // an envelope of a version we do not read
	CodeDecode            Code = "decode_error"       // an envelope that does not decode
	CodeUnavailable       Code = "unavailable"        // a dependency (NATS, Redis) is down
	CodeInternal          Code = "internal"           // a bug
)

// Coded is an error that carries a stable code: *Error, and any error of
// ours whose type says what kind of failure it is (the way nats.go's
// jetstream errors carry their API error code). CodeOf honours every one.
type Coded interface {
	error
	Code() Code
}

// Error is an error with a stable code. It wraps the errors its message was
// made from, so errors.Is and errors.As still see them.
type Error struct {
	code Code
	msg  string
	err  error
}

// Errorf is the one constructor of coded errors: an *Error with code and
// the message fmt.Errorf(format, args...) makes; every %w in format (even
// several) stays visible to errors.Is and errors.As.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{code: code, msg: err.Error(), err: err}
}

func (e *Error) Error() string { return e.msg }

// Code returns the error's code.
func (e *Error) Code() Code { return e.code }

// Unwrap returns the error the message was formatted as, whose own Unwrap
// yields what format's %w verbs wrapped.
func (e *Error) Unwrap() error { return e.err }

// CodeOf returns the code of the first Coded error in err's chain, or
// CodeInternal when there is none (and "" for a nil error).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var c Coded
	if errors.As(err, &c) {
		return c.Code()
	}
	return CodeInternal
}
