package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/conductor"
	"github.com/ironfleet/ironfleet/transport"
)

// APIConfig is one API server.
type APIConfig struct {
	// Host names the API process: its node lock attempts hold as
	// api.LockHolder(Host). Required.
	Host string
	// API configures the server.
	API api.Config
}

// NewAPI builds the API on infra, with drivers to validate nodes against and
// readiness checks of NATS and Redis.
func NewAPI(infra *Infra, drivers conductor.Drivers, cfg APIConfig) (*api.Server, error) {
	if cfg.Host == "" {
		return nil, errors.New("fleet: APIConfig.Host is required: it names the API as a lock holder")
	}
	names := make([]string, 0, len(drivers))
	for name := range drivers {
		names = append(names, name)
	}
	slices.Sort(names)
	nc, rc := infra.NATS, infra.Redis
	return api.New(api.Deps{
		Nodes: infra.Inventory, Ports: infra.Inventory, Tasks: infra.Bus, Locks: infra.Locks.WithHolder(api.LockHolder(cfg.Host)),
		Conductors: infra.Registry, Drivers: drivers, DriverNames: names, Records: transport.NewRecords(infra.Inventory),
		Events: infra.Bus,
		Checks: map[string]api.Checker{
			"nats": api.CheckFunc(func(context.Context) error {
				if !nc.IsConnected() {
					return fmt.Errorf("nats: %s", nc.Status())
				}
				return nil
			}),
			"redis": api.CheckFunc(func(ctx context.Context) error { return rc.Ping(ctx).Err() }),
		},
	}, cfg.API)
}
