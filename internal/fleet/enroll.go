package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// enrollment is what enroll registers.
type enrollment struct {
	n                  int
	imageURL, imageSum string
	// provide takes each node to available; manualClean enrolls them with
	// automated_clean false (providing skips cleaning).
	provide, manualClean bool
	// workers nodes at a time; zero means 8.
	workers int
}

// enroll registers e.n simulated nodes (sim-0001…) and their ports through
// the API, as an operator would, and with e.provide takes each to available.
func enroll(ctx context.Context, apiURL string, e enrollment, log *slog.Logger) error {
	c := &APIClient{Base: apiURL}
	g, gctx := errgroup.WithContext(ctx)
	if e.workers <= 0 {
		e.workers = 8
	}
	g.SetLimit(e.workers)
	for i := range e.n {
		name := fmt.Sprintf("sim-%04d", i+1)
		mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", (i>>16)&0xff, (i>>8)&0xff, i&0xff)
		g.Go(func() error {
			var node struct {
				UUID string `json:"uuid"`
			}
			body := map[string]any{
				"name": name, "driver": "sim", "driver_info": map[string]any{"sim_machine": name},
				"instance_info": map[string]any{"image_source": e.imageURL, "image_checksum": e.imageSum},
			}
			if e.manualClean {
				body["automated_clean"] = false
			}
			if err := c.Do(gctx, http.MethodPost, "/v1/nodes", body, &node); err != nil {
				return fmt.Errorf("enroll %s: %w", name, err)
			}
			if err := c.Do(gctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": node.UUID, "address": mac}, nil); err != nil {
				return fmt.Errorf("port of %s: %w", name, err)
			}
			if !e.provide {
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
		log.Info("simulated nodes enrolled", "nodes", e.n, "provided", e.provide)
	}
	return err
}

// APIClient is a small JSON client of ironfleet's own API, speaking as the
// baremetal CLI does (microversion latest): what the dev fleet, the fleet
// benchmark and the hardware lab use to drive the product from outside.
type APIClient struct {
	// Base is the API's base URL (http://127.0.0.1:6385).
	Base string
	// HTTP makes the requests; nil means a client with a 30s timeout.
	HTTP *http.Client
}

// HTTPError is an answer with a status of 300 or more.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Do sends body (as JSON, when not nil) and decodes the answer into out
// (when not nil); an answer of 300 or more is an *HTTPError.
func (c *APIClient) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return &HTTPError{Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// IsStatus reports whether err is an answer with status code.
func IsStatus(err error, code int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == code
}

// provision asks for target and waits until the node reaches want,
// retrying while the node is locked (409), as `baremetal --wait` users do.
func (c *APIClient) provision(ctx context.Context, uuid, target, want string) error {
	for {
		err := c.Do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/provision", map[string]any{"target": target}, nil)
		if IsStatus(err, http.StatusConflict) {
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
		if err := c.Do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &n); err != nil {
			return err
		}
		switch {
		case n.State == want:
			return nil
		case n.LastError != "" && (n.State == "enroll" || n.State == "clean failed" || n.State == "deploy failed" || n.State == "error"):
			return fmt.Errorf("node is %s: %s", n.State, n.LastError)
		}
		if err := wait.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
