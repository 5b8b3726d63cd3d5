// Package buildinfo reports which ironfleet this binary is.
package buildinfo

import "runtime/debug"

// Version is set at link time by the Makefile (-X …/buildinfo.Version=…);
// "dev" means a plain `go build`.
var Version = "dev"

// Commit is the VCS revision the binary was built from, when Go recorded one.
func Commit() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
