// Package conductor turns node tasks into machines changing state: it
// consumes its groups' tasks from the bus, takes each node's lock, runs the
// provisioning state machine and drives hardware through small interfaces.
//
// # Tasks and locks
//
// A Conductor (New, Run) consumes the tasks of its conductor groups with
// bounded concurrency (Config.Workers, of which ReservedWorkers never run
// heartbeats, so agents cannot starve user actions; at most MaxDeploys and
// MaxCleans nodes of a group deploying and cleaning at once). Every task
// takes its node's lock before touching the node:
//
//   - a task carrying a ticket — a user action the api published after
//     taking the lock in standard mode, or a continuation — claims the
//     ticket (patient mode, bounded by ClaimWait);
//   - a heartbeat tries once and never waits: the agent beats again;
//   - anything else tries Ironic's way (standard mode, 3 attempts).
//
// Under the lock the task re-reads the node and re-validates its action
// against the state machine (internal/provision); an action that no longer
// applies (a redelivery of work already done, two requests racing) changes
// nothing and publishes a task.failed event saying why. Every write carries
// the lock's fencing token, so a conductor that lost its lock cannot
// overwrite the node. The node's Step records where a multi-phase flow
// stands, so a redelivered task resumes rather than restarts.
//
// # Deploy and clean: phases joined by handoff
//
// A deploy boots the node into the agent (PXE config, boot device, reboot)
// and leaves it in wait call-back. The agent's heartbeat (a task) finds it
// there, moves it back to deploying and hands over to continue_deploy, which
// has the agent write the image, switches the boot device to disk and
// reboots: active. Cleaning runs the same way through clean wait and
// continue_clean (the agent erases the disk's first and last MiB).
//
// The handoff is why ironfleet exists, and internal/dispatch owns it (the
// reasoning for publish-then-handoff, and what a crash between the two
// costs, is written there once): the heartbeat that resumes a flow moves
// the node on (wait call-back → deploying), publishes the continuation
// carrying a fresh ticket and the move it made (wire.Task.FirstMove), then
// hands its lock to that ticket (continueWith). Nothing — a console,
// another heartbeat, the power sync — can take the lock in between,
// however long the task sits in the queue (up to the ticket's claim
// timeout). If the publish fails, the node is back in its wait state and
// the agent's next heartbeat tries again. If the continuation is lost
// anyway (the conductor died between the move and the publish, or a publish
// reported failure after all and the move could not be undone), the node
// sits in the continuation's step with its lock free, and the agent's next
// heartbeat past OrphanAfter publishes the continuation again
// (rescueContinuation) — once no continuation as old is left on the work
// queue, so that a backlog is not taken for a loss. If the continuation's conductor
// dies mid-step, JetStream redelivers the task after AckWait; its ticket
// was claimed, so the new consumer waits in line like anyone and gets the
// lock when the dead lease ends, then redoes the step (writing an image
// twice is harmless).
//
// A user action arrives the same way: the api dispatched it, so the node
// is already where the action's first move leads (available → deploying)
// and the task says so (FirstMove); the conductor goes on from there.
// Without a first move (power, boot device, a move onto a stable state),
// the conductor makes the move itself. Which operation runs what is one
// table, operations in handle.go.
//
// Deps.Handoff replaces both sides of the handoff; only ironfleet bench
// fleet sets it, to measure Ironic's release-then-reacquire against it
// (internal/fleetbench).
//
// TestSeedScenario runs a deploy while eight clients hammer the node's lock;
// TestConductorKilledMidDeploy kills the conductor writing the image.
//
// # Periodic work
//
// One conductor per group at a time sweeps every Config.Periodic. It leads
// while it holds the group's bsm/redislock lease (Config.PeriodicLease),
// which it renews every third of its TTL between and during sweeps, so a
// sweep longer than the lease never overlaps another conductor's; the other
// conductors try for the lease every period. When renewing fails the leader
// gives up a quarter of the TTL before the lease could run out on the
// server, and its sweep's context (the node work in flight included) is
// cancelled with cause ErrLeaseLost. A leader that stops releases the lease;
// a dead one's lease runs out and the next conductor to try takes over.
// TestPeriodicLeaderDies, TestPeriodicLongSweepKeepsLease and
// TestPeriodicLeaseLostStopsSweep show it. The sweeps: nodes in a wait state past WaitTimeout fail into their
// failed state; nodes left in a transient state past RecoverAfter with
// their lock free (their conductor died) fail with a last_error saying so;
// every PowerSync the power states of stable nodes are read, drift recorded,
// and a node whose BMC fails PowerSyncFailures times in a row is put in
// maintenance. At start a conductor fails the transient nodes it left
// behind itself. The registry record is kept alive by Run.
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
//     "fake-hardware": conductor.FakeHardware(),
//     }
//
//   - Boot (network boot configs for a node's PXE-enabled MACs, written when
//     a deploy, clean or inspection starts and removed when it ends):
//     conductor/pxe's Configs, served by conductor/pxe's read-only TFTP
//     Server.
//
// Which of these a flow uses is decided by the node's interfaces
// (internal/hardware.Of), in one place, interfaces.go: pxe and ipxe boot
// use the Boot configs, a fake boot writes none; a direct deploy and agent
// inspection boot the agent, while a fake deploy (fake-hardware) deploys,
// undeploys and cleans at once and fake inspection completes at once, as
// Ironic's fake interfaces; no-inspect refuses. FakeHardware's power state
// is what was last set. Describe gives a PowerDriver the descriptions of
// its driver_info keys (Drivers.Properties).
//
// Power errors carry wire.CodeBMC and a one-line message fit for a node's
// last_error; BMC failures and timeouts have already been retried with
// backoff inside the driver. Power actions are idempotent (a machine already
// in the target state is left alone), but idempotence alone does not make a
// redelivered task harmless: a power off redelivered after a newer power on
// would turn the machine back off, a reboot would run twice. So a task that
// finished spends its ticket when it releases the lock (lock.ErrTicketUsed
// for ten minutes, Config.TicketMemory): a copy delivered again because its
// ack was lost, or because its conductor died between finishing and
// acking, is acknowledged as done without running (withLock). Work that
// will be retried (a limit reached, a failure to write) yields the lock
// with its ticket unspent, and a conductor that dies mid-work spends
// nothing: the next delivery redoes the step.
// TestRedeliveryAfterALostAckRunsNothingAgain loses the ack of a power off
// (then a power on runs) and of a reboot.
// IPMI credentials never appear in errors, logs or metrics.
package conductor
