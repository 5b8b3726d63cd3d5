// Package apiclient is the client of ironfleet's own REST API with which
// ironfleet's tools drive the product from outside, speaking as the
// baremetal CLI does (microversion "latest"): the dev fleet's and
// `ironfleet sim --enroll`'s enrollment, `ironfleet watch`, the fleet
// benchmark and the hardware lab.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/internal/wait"
)

// Client sends JSON requests to the API at Base. The zero value of each
// optional field is a documented default.
type Client struct {
	// Base is the API's base URL (http://127.0.0.1:6385).
	Base string
	// HTTP makes the requests; nil means a client with a 30s timeout.
	HTTP *http.Client
	// LockedRetry is how long SetProvisionState waits before asking again
	// when the node is locked (409); zero means 500ms.
	LockedRetry time.Duration
	// Poll is how often WaitState reads the node; zero means 200ms.
	Poll time.Duration
}

// HTTPError is an answer with a status of 300 or more.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// IsStatus reports whether err is an answer with status code.
func IsStatus(err error, code int) bool {
	var he *HTTPError
	return errors.As(err, &he) && he.Status == code
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Do sends body (as JSON, when not nil) to path, relative to Base or an
// absolute URL (a page's "next" link), and decodes the answer into out
// (when not nil); an answer of 300 or more is an *HTTPError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	url := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		url = strings.TrimRight(c.Base, "/") + path
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The newest microversion: names and other fields need one past 1.1.
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
		return &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// ListNodes GETs path (/v1/nodes?…) and every page after it, decoding each
// node into a T (a struct of the fields wanted).
func ListNodes[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var all []T
	for path != "" {
		var page struct {
			Nodes []T    `json:"nodes"`
			Next  string `json:"next"`
		}
		if err := c.Do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Nodes...)
		if len(page.Nodes) == 0 {
			break
		}
		path = page.Next
	}
	return all, nil
}

// SetProvisionState asks for target (PUT /v1/nodes/{node}/states/provision),
// asking again every LockedRetry while the node is locked (409 NodeLocked)
// or its conductor group is at its deploy or clean limit (503, Ironic's
// ConcurrentActionLimit), as `baremetal --wait` users and nova do. It
// returns how many refusals it got.
func (c *Client) SetProvisionState(ctx context.Context, node, target string) (conflicts int, err error) {
	retry := c.LockedRetry
	if retry <= 0 {
		retry = 500 * time.Millisecond
	}
	for {
		err := c.Do(ctx, http.MethodPut, "/v1/nodes/"+node+"/states/provision", map[string]any{"target": target}, nil)
		if !IsStatus(err, http.StatusConflict) && !IsStatus(err, http.StatusServiceUnavailable) {
			return conflicts, err
		}
		conflicts++
		if err := wait.Sleep(ctx, retry); err != nil {
			return conflicts, err
		}
	}
}

// WaitState reads the node every Poll until it is in state want, and fails
// when it lands in a failed state (or back in enroll) with a last_error.
func (c *Client) WaitState(ctx context.Context, node, want string) error {
	poll := c.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	for {
		var n struct {
			State     string `json:"provision_state"`
			LastError string `json:"last_error"`
		}
		if err := c.Do(ctx, http.MethodGet, "/v1/nodes/"+node, nil, &n); err != nil {
			return err
		}
		switch {
		case n.State == want:
			return nil
		case n.LastError != "" && (n.State == "enroll" || n.State == "error" || strings.HasSuffix(n.State, " failed")):
			return fmt.Errorf("node %s is %s, want %s: %s", node, n.State, want, n.LastError)
		}
		if err := wait.Sleep(ctx, poll); err != nil {
			return err
		}
	}
}
