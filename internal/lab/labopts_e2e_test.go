//go:build e2e

package lab

// labOptions change what startLab builds.
type labOptions struct {
	// sol wires ipmi_sim's Serial-over-LAN to the machine's serial port
	// (QEMU's TCP chardev, the serial log still kept).
	sol bool
}

type labOption func(*labOptions)

// withSOL gives the lab's BMC a Serial-over-LAN to the machine, through a
// SerialLine that outlives the machine's power cycles.
func withSOL() labOption { return func(o *labOptions) { o.sol = true } }
