package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
)

// enroll registers n simulated nodes (sim-0001…) and their ports through
// the API, as an operator would, and with provide takes each to available.
func enroll(ctx context.Context, apiURL string, n int, imageURL, imageSum string, provide bool, log *slog.Logger) error {
	c := &apiClient{base: apiURL, hc: &http.Client{Timeout: 30 * time.Second}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		name := fmt.Sprintf("sim-%04d", i+1)
		mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
		g.Go(func() error {
			var node struct {
				UUID string `json:"uuid"`
			}
			if err := c.do(gctx, http.MethodPost, "/v1/nodes", map[string]any{
				"name": name, "driver": "sim", "driver_info": map[string]any{"sim_machine": name},
				"instance_info": map[string]any{"image_source": imageURL, "image_checksum": imageSum},
			}, &node); err != nil {
				return fmt.Errorf("enroll %s: %w", name, err)
			}
			if err := c.do(gctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": node.UUID, "address": mac}, nil); err != nil {
				return fmt.Errorf("port of %s: %w", name, err)
			}
			if !provide {
				return nil
			}
			for _, step := range []struct{ target, want string }{{"manage", "manageable"}, {"provide", "available"}} {
				if err := c.provision(gctx, node.UUID, step.target, step.want); err != nil {
					return fmt.Errorf("%s %s: %w", step.target, name, err)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		log.Info("simulated nodes enrolled", "nodes", n, "provided", provide)
	}
	return err
}

// apiClient speaks the API as the baremetal CLI does (microversion latest).
type apiClient struct {
	base string
	hc   *http.Client
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &httpError{Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

type httpError struct {
	Status int
	Body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// provision asks for target and waits until the node reaches want,
// retrying while the node is locked (409), as `baremetal --wait` users do.
func (c *apiClient) provision(ctx context.Context, uuid, target, want string) error {
	for {
		err := c.do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/provision", map[string]any{"target": target}, nil)
		if he, ok := err.(*httpError); ok && he.Status == http.StatusConflict {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	for {
		var n struct {
			State     string `json:"provision_state"`
			LastError string `json:"last_error"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &n); err != nil {
			return err
		}
		switch {
		case n.State == want:
			return nil
		case n.LastError != "" && (n.State == "enroll" || n.State == "clean failed" || n.State == "deploy failed" || n.State == "error"):
			return fmt.Errorf("node is %s: %s", n.State, n.LastError)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
