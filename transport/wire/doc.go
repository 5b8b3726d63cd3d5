// Package wire is ironfleet's wire contract: the value types that cross
// process boundaries (the versioned task envelope, events, stable error
// codes) and the records every component shares (node, port, provision and
// power states). It imports nothing of ours, so api, conductor, agent and
// transport can all depend on it without depending on each other.
//
// Compatibility: every envelope carries a version number. A reader rejects a
// version it does not know (ErrUnknownVersion) instead of guessing; fields
// are only ever added, with omitempty, within a version.
package wire
