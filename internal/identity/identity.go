// Package identity names this process to the rest of the fleet. It is the
// one place the default name is computed: a conductor's and an API
// process's Host (in the conductor registry, in events, in node records and
// as the holder of their node locks) default to it. It imports nothing of
// ours, so that any package may use it; the lock package, which imports
// nothing of ours either, keeps its own "<hostname>:<pid>" fallback for a
// Locker nobody named.
package identity

import (
	"errors"
	"fmt"
	"os"
)

// Host is the name a process goes by when it was given none: the host name
// the kernel reports.
func Host() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("identity: host name: %w", err)
	}
	if h == "" {
		return "", errors.New("identity: the host name is empty")
	}
	return h, nil
}
