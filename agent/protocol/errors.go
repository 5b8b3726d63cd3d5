package protocol

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Errors callers branch on. The client returns the first four for the
// HTTP status of an error answer; command failures reported by the command
// API carry a code (Command.Code) that Command.Err maps back to the others.
// Their text starts "agent: ": they are the agent's errors, and the agent
// sends their text in its answers.
var (
	// ErrUnauthorized: a command API call without the right agent token (401).
	ErrUnauthorized = errors.New("agent: unauthorized")
	// ErrBusy: a command was refused because another one is running (409).
	ErrBusy = errors.New("agent: busy with another command")
	// ErrCommandNotFound: no command with that id (404).
	ErrCommandNotFound = errors.New("agent: no such command")
	// ErrInvalidParams: a command's name or parameters are wrong (400).
	ErrInvalidParams = errors.New("agent: invalid command parameters")
	// ErrChecksumMismatch: the downloaded image's checksum is not the one
	// the conductor sent; the target was wiped.
	ErrChecksumMismatch = errors.New("agent: image checksum mismatch")
	// ErrTargetTooSmall: the image does not fit on the target.
	ErrTargetTooSmall = errors.New("agent: target too small for image")
	// ErrDownloadStalled: the image download received no data for the stall
	// timeout. Retrying is allowed.
	ErrDownloadStalled = errors.New("agent: image download stalled")
	// ErrDownload: the image download failed (HTTP status, connection cut,
	// short body). Retrying is allowed.
	ErrDownload = errors.New("agent: image download failed")
	// ErrImageTruncated: the image ended before its length (Content-Length,
	// the size given, or what its qcow2 tables point to); the target was
	// wiped. Retrying is allowed.
	ErrImageTruncated = errors.New("agent: image truncated")
	// ErrInvalidImage: the image is in a format the agent does not write
	// (vmdk, vhd, iso …), not the format it was declared to be, or a
	// qcow2 image it cannot convert (a backing file, encryption); nothing
	// of it was written.
	ErrInvalidImage = errors.New("agent: invalid image")
	// ErrMachine: the machine failed to reboot or power off.
	ErrMachine = errors.New("agent: machine action failed")
	// ErrCanceled: the command was cancelled because the agent stopped.
	ErrCanceled = errors.New("agent: command cancelled")
)

// Failure codes in Command.Code, one per sentinel above that a command can
// end with. "io_error" is any other failure (the target could not be
// opened, written or synced).
const (
	CodeChecksumMismatch = "checksum_mismatch"
	CodeTargetTooSmall   = "target_too_small"
	CodeDownloadStalled  = "download_stalled"
	CodeDownload         = "download_failed"
	CodeImageTruncated   = "image_truncated"
	CodeInvalidImage     = "invalid_image"
	CodeMachine          = "machine_error"
	CodeCanceled         = "canceled"
	CodeIO               = "io_error"
)

// Codes of the command API's error answers (ErrorBody.Code), by HTTP
// status. A 500 (the inventory could not be read) has CodeIO.
const (
	CodeUnauthorized  = "unauthorized"   // 401: missing or wrong agent token
	CodeInvalidParams = "invalid_params" // 400: bad command name, body or params
	CodeBusy          = "busy"           // 409: another command is running
	CodeNotFound      = "not_found"      // 404: no such command or path
	// CodeUnavailable (503) is the simulated fleet's answer for a node
	// whose agent is not running, where a real machine would not answer.
	CodeUnavailable = "unavailable"
)

var codeErrs = []struct {
	code string
	err  error
}{
	{CodeChecksumMismatch, ErrChecksumMismatch},
	{CodeTargetTooSmall, ErrTargetTooSmall},
	{CodeDownloadStalled, ErrDownloadStalled},
	{CodeImageTruncated, ErrImageTruncated},
	{CodeInvalidImage, ErrInvalidImage},
	{CodeDownload, ErrDownload},
	{CodeMachine, ErrMachine},
	{CodeCanceled, ErrCanceled},
}

// CodeOf returns the failure code a command that failed with err reports:
// the code of the sentinel err wraps, else CodeIO.
func CodeOf(err error) string {
	for _, ce := range codeErrs {
		if errors.Is(err, ce.err) {
			return ce.code
		}
	}
	return CodeIO
}

// errOf returns the sentinel of a failure code, or nil for CodeIO and
// unknown codes.
func errOf(code string) error {
	for _, ce := range codeErrs {
		if ce.code == code {
			return ce.err
		}
	}
	return nil
}

// ErrorBody is the body of every error answer of the command API.
type ErrorBody struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

// WriteError answers with status and an ErrorBody of code and msg.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorBody{Code: code, Error: msg})
}
