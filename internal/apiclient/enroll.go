package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Node is a node to enroll, with the MACs of its ports.
type Node struct {
	Name         string
	Driver       string
	DriverInfo   map[string]any
	InstanceInfo map[string]any
	// AutomatedClean, when set, is the node's automated_clean.
	AutomatedClean *bool
	MACs           []string
}

// EnrollConfig tunes Enroll; every zero value is a documented default.
type EnrollConfig struct {
	// Workers is how many nodes are enrolled at once; zero means 8.
	Workers int
	// Provide takes each node to available once enrolled (manage, then
	// provide, waiting for each); false leaves it in enroll.
	Provide bool
}

// Enroll creates nodes and their ports through the API, as an operator
// would, and returns the nodes' UUIDs by name (those enrolled when it
// fails too). A node whose name exists already (enrolled by an earlier run
// against the same API) is reused: its driver_info and instance_info are
// replaced with the ones given, and its ports that exist are kept.
func (c *Client) Enroll(ctx context.Context, nodes []Node, cfg EnrollConfig) (map[string]string, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	var mu sync.Mutex
	uuids := make(map[string]string, len(nodes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cfg.Workers)
	for _, n := range nodes {
		g.Go(func() error {
			uuid, err := c.enroll(gctx, n)
			if err != nil {
				return fmt.Errorf("enroll %s: %w", n.Name, err)
			}
			mu.Lock()
			uuids[n.Name] = uuid
			mu.Unlock()
			if !cfg.Provide {
				return nil
			}
			for _, step := range []struct{ target, want string }{{"manage", "manageable"}, {"provide", "available"}} {
				if _, err := c.SetProvisionState(gctx, uuid, step.target); err != nil {
					return fmt.Errorf("%s %s: %w", step.target, n.Name, err)
				}
				if err := c.WaitState(gctx, uuid, step.want); err != nil {
					return fmt.Errorf("%s %s: %w", step.target, n.Name, err)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return uuids, err
}

// enroll creates (or reuses) one node and its ports.
func (c *Client) enroll(ctx context.Context, n Node) (string, error) {
	var node struct {
		UUID string `json:"uuid"`
	}
	body := map[string]any{"name": n.Name, "driver": n.Driver, "driver_info": n.DriverInfo, "instance_info": n.InstanceInfo}
	if n.AutomatedClean != nil {
		body["automated_clean"] = *n.AutomatedClean
	}
	err := c.Do(ctx, http.MethodPost, "/v1/nodes", body, &node)
	if IsStatus(err, http.StatusConflict) {
		err = c.Do(ctx, http.MethodPatch, "/v1/nodes/"+n.Name, []map[string]any{
			{"op": "replace", "path": "/driver_info", "value": n.DriverInfo},
			{"op": "replace", "path": "/instance_info", "value": n.InstanceInfo},
		}, &node)
	}
	if err != nil {
		return "", err
	}
	for _, mac := range n.MACs {
		err := c.Do(ctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": node.UUID, "address": mac}, nil)
		if err != nil && !IsStatus(err, http.StatusConflict) {
			return "", fmt.Errorf("port %s: %w", mac, err)
		}
	}
	return node.UUID, nil
}
