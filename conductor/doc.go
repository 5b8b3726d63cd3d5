// Package conductor turns node tasks into machines changing state: it
// consumes its groups' tasks from the bus, takes each node's lock, runs the
// provisioning state machine and drives hardware through small interfaces.
//
// # Drivers
//
// Hardware is reached through the interfaces in driver.go, implemented in
// sub-packages that import only transport/wire (so this package may import
// none of them; cmd/ wires them in):
//
//   - Power (power state, power on/off/reboot, boot device): conductor/ipmi
//     drives a BMC over IPMI 2.0 lanplus; conductor/sim is a simulated
//     machine. A node's Power comes from the PowerDriver of its driver name
//     in a Drivers map; NewPowerDriver adapts a driver package's concrete
//     types:
//
//     conductor.Drivers{
//     "ipmi": conductor.NewPowerDriver(ipmiDriver.ValidateDriverInfo, ipmiDriver.NodePower),
//     "sim":  conductor.NewPowerDriver(fleet.ValidateDriverInfo, fleet.NodePower),
//     }
//
//   - Boot (network boot configs for a node's PXE-enabled MACs, written when
//     a deploy, clean or inspection starts and removed when it ends):
//     conductor/pxe's Configs, served by conductor/pxe's read-only TFTP
//     Server.
//
// Power errors carry wire.CodeBMC and a one-line message fit for a node's
// last_error; BMC failures and timeouts have already been retried with
// backoff inside the driver. Power actions are idempotent (a machine already
// in the target state is left alone), so a redelivered task is harmless.
// IPMI credentials never appear in errors, logs or metrics.
package conductor
