// Package conductor turns node tasks into machines changing state: it
// consumes its groups' tasks from the bus, takes each node's lock, runs the
// provisioning state machine and drives hardware through small interfaces.
package conductor
