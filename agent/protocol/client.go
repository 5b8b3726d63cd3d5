package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client is the conductor's side of the command API: it calls one agent at
// its callback URL with its agent token. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// ClientConfig holds a Client's optional settings.
type ClientConfig struct {
	// HTTPClient makes the calls; nil means a shared client with pooled
	// connections. Its Timeout, if any, bounds each call.
	HTTPClient *http.Client
	// Timeout bounds each call whose context has no deadline; zero means 30s.
	Timeout time.Duration
}

// defaultClient is shared by every Client without its own. A conductor
// calls many agents, each at its own address, but a simulated fleet serves
// every agent's command API from one: the per-host bound keeps the
// connections (file descriptors) a conductor holds to that one address
// from growing with the nodes, and the idle bound lets calls reuse them.
var defaultClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxConnsPerHost, t.MaxIdleConnsPerHost = 32, 32
	return &http.Client{Transport: t}
}()

// NewClient returns a client of the agent whose command API is at baseURL
// (the callback_url of its heartbeats), authenticating with token.
func NewClient(baseURL, token string, cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agent: client: base URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	if token == "" {
		return nil, errors.New("agent: client: empty agent token")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultClient
	}
	if cfg.Timeout > 0 {
		c := *hc
		c.Timeout = cfg.Timeout
		hc = &c
	} else if hc.Timeout == 0 {
		c := *hc
		c.Timeout = 30 * time.Second
		hc = &c
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}, nil
}

// Inventory returns the machine's hardware inventory.
func (c *Client) Inventory(ctx context.Context) (Inventory, error) {
	var inv Inventory
	err := c.do(ctx, http.MethodGet, "/v1/inventory", nil, http.StatusOK, &inv)
	return inv, err
}

// WriteImage starts writing an image; poll Command for its progress.
func (c *Client) WriteImage(ctx context.Context, p WriteImageParams) (Command, error) {
	return c.post(ctx, CmdWriteImage, p)
}

// EraseDisk starts zeroing both ends of target.
func (c *Client) EraseDisk(ctx context.Context, target string) (Command, error) {
	return c.post(ctx, CmdEraseDisk, EraseDiskParams{Target: target})
}

// EraseMetadata starts wiping target's partition tables and signatures
// only: its first and last 18 KiB, as ironic-lib's destroy_disk_metadata
// (MBR, GPT and its backup, LVM/MD/DM-RAID labels), leaving the data
// between alone.
func (c *Client) EraseMetadata(ctx context.Context, target string) (Command, error) {
	return c.post(ctx, CmdEraseMetadata, EraseMetadataParams{Target: target})
}

// PowerOff starts powering the machine off. A real machine goes away
// without the command ever reporting success: confirm through the BMC.
func (c *Client) PowerOff(ctx context.Context) (Command, error) {
	return c.post(ctx, CmdPowerOff, nil)
}

// Reboot starts rebooting the machine. A real machine goes away without
// the command ever reporting success: confirm through the BMC or the next
// lookup.
func (c *Client) Reboot(ctx context.Context) (Command, error) {
	return c.post(ctx, CmdReboot, nil)
}

// Command returns the state of a command.
func (c *Client) Command(ctx context.Context, id string) (Command, error) {
	var cmd Command
	if id == "" {
		return cmd, fmt.Errorf("%w: empty command id", ErrInvalidParams)
	}
	err := c.do(ctx, http.MethodGet, "/v1/commands/"+url.PathEscape(id), nil, http.StatusOK, &cmd)
	return cmd, err
}

// Commands returns the commands the agent remembers, oldest first.
func (c *Client) Commands(ctx context.Context) ([]Command, error) {
	var l CommandList
	err := c.do(ctx, http.MethodGet, "/v1/commands", nil, http.StatusOK, &l)
	return l.Commands, err
}

// Wait polls a command until it is no longer running and returns its
// final state; a failed command is returned with its Err. The first poll
// comes after WaitFirstPoll and each pause doubles up to interval: a quick
// command (an image written in milliseconds) is seen done at once, a slow
// one (minutes on a real disk) costs about one request per interval.
func (c *Client) Wait(ctx context.Context, id string, interval time.Duration) (Command, error) {
	pause := min(WaitFirstPoll, interval)
	for {
		cmd, err := c.Command(ctx, id)
		if err != nil {
			return cmd, err
		}
		if cmd.Status != StatusRunning {
			return cmd, cmd.Err()
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return cmd, fmt.Errorf("agent: waiting for %s %s: %w", cmd.Name, id, context.Cause(ctx))
		case <-t.C:
		}
		pause = min(2*pause, interval)
	}
}

// WaitFirstPoll is Wait's first pause.
const WaitFirstPoll = 10 * time.Millisecond

func (c *Client) post(ctx context.Context, name string, params any) (Command, error) {
	req := CommandRequest{Name: name}
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return Command{}, fmt.Errorf("agent: %s: %w", name, err)
		}
		req.Params = b
	}
	var cmd Command
	err := c.do(ctx, http.MethodPost, "/v1/commands", req, http.StatusAccepted, &cmd)
	return cmd, err
}

func (c *Client) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("agent: %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("agent: %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("agent: %s %s: reading answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		var eb ErrorBody
		_ = json.Unmarshal(b, &eb)
		msg := eb.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		var sentinel error
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			sentinel = ErrUnauthorized
		case http.StatusConflict:
			sentinel = ErrBusy
		case http.StatusNotFound:
			sentinel = ErrCommandNotFound
		case http.StatusBadRequest:
			sentinel = ErrInvalidParams
		default:
			return fmt.Errorf("agent: %s %s: %s: %s", method, path, resp.Status, msg)
		}
		msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
		return fmt.Errorf("%w: %s %s: %s", sentinel, method, path, msg)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("agent: %s %s: decoding answer: %w", method, path, err)
	}
	return nil
}
