package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
)

// browserFlags keep the browser off the network and quiet, as the issue
// asks: nothing outside the machine is reachable anyway.
var browserFlags = []string{"headless", "no-sandbox", "disable-gpu", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync"}

// TestUIInABrowser drives the web console (/ui) in Debian's chromium,
// headless, against a dev fleet: the page loads without a console error and
// shows the fleet; a deploy clicked on a node's page reaches active on the
// page; the lock view shows a line forming while pests contend for a node's
// lock and draining when they stop, from the watch stream alone; a reader
// sees every action disabled and the API refuses one called anyway.
//
// The console pane: the deployed node runs the simulated machine's serial
// console (console_interface sim); enabled from the page, its boot lines
// show in the pane through GET /v1/nodes/{n}/console/ws. A fake console,
// which streams nothing, is refused with its reason.
func TestUIInABrowser(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		redistest.Unavailable(t, fmt.Errorf("chromium (Debian's package chromium): %w", err))
	}
	dev := startDev(t, fleet.DevConfig{Nodes: 2, Provide: true, ManualClean: true})
	reader := startReaderAPI(t, dev)

	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(browser), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000)}
	for _, f := range browserFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), opts...)
	defer cancelAlloc()
	var errs pageErrors
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithListener(errs.listen),
		chromedp.WithErrorf(func(f string, a ...any) { t.Logf("chromedp: "+f, a...) }))
	defer cancelBrowser()
	// One deadline for the whole walk; each wait below is a DOM condition.
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			// What the page showed, for the failure's story.
			sctx, cancel := context.WithTimeout(bctx, 5*time.Second)
			defer cancel()
			text, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`))
			t.Fatalf("%s: %v (page errors: %v)\nthe page:\n%s", what, err, errs.all(), text)
		}
	}
	until := func(what, js string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond),
				chromedp.WithPollingTimeout(60*time.Second))(ctx, tg)
			if err != nil {
				err = fmt.Errorf("waiting for %s: %w", what, err)
			}
			return chromedp.Void{}, err
		}
	}

	// The fleet: both nodes enrolled and provided, as the fleet page counts them.
	run("the fleet page", chromedp.Navigate(dev.APIURL()+"/ui"),
		until("the live feed", `document.getElementById('conn').dataset.state === 'open'`),
		until("two available nodes", `document.querySelector('#by-provision tr[data-provision-state="available"] td.num')?.textContent === '2'`),
		until("the nodes table", `document.querySelectorAll('#nodes tbody tr').length === 2`))
	shot(ctx, t, "ui-fleet.png")
	var uuids []string
	run("read the nodes' UUIDs", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		var err error
		uuids, err = chromedp.Evaluate[[]string](`[...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.node).sort()`)(ctx, tg)
		return chromedp.Void{}, err
	})
	if len(uuids) != 2 {
		t.Fatalf("nodes %v", uuids)
	}
	deployed, contended := uuids[0], uuids[1]

	// Pests contend for one node's lock, waiting in line (patient mode) as
	// the lock's other users do: a holder and a line of two.
	pctx, stopPests := context.WithCancel(t.Context())
	pests := startPests(pctx, t, dev, contended, 3)
	lockRow := `document.querySelector('#locks tr[data-lock-node="` + contended + `"]')`
	run("the lock view", chromedp.Navigate(dev.APIURL()+"/ui#/locks"),
		until("a line of two behind a pest", lockRow+`?.dataset.line === '2' && `+lockRow+`.dataset.holder === 'pest'`))
	shot(ctx, t, "ui-locks.png")
	stopPests()
	pests.Wait()
	run("the line drains", until("no lock on the contended node", lockRow+` === null`))

	// A deploy clicked on the node's page reaches active on the page. The
	// node runs the simulated machine's serial console, opened below.
	apiCall(t, http.MethodPatch, dev.APIURL()+"/v1/nodes/"+deployed,
		`[{"op": "replace", "path": "/console_interface", "value": "sim"}]`, http.StatusOK, nil)
	state := `document.getElementById('node-provision-state')?.dataset.state`
	run("deploy from the node's page", chromedp.Navigate(dev.APIURL()+"/ui#/node/"+deployed),
		until("the node available", state+` === 'available'`),
		until("the console pane", `document.getElementById('console-status')?.dataset.state === 'disabled'`),
		chromedp.Click(`button[data-action="deploy"]`, chromedp.NodeEnabled),
		until("the deploy accepted", `document.getElementById('action-result')?.textContent.includes('accepted')`),
		until("the node active", state+` === 'active'`),
		until("the node's port", `document.querySelectorAll('#ports tbody tr').length === 1`))

	// Its console enabled from the page: the pane opens the console's
	// WebSocket and shows the machine's own lines (the simulated machine
	// prints its power and boot events on its serial port).
	consoleState := `document.getElementById('console-status')?.dataset.state`
	run("the deployed node's console", chromedp.Click(`button[data-action="console-on"]`, chromedp.NodeEnabled),
		until("the console open", consoleState+` === 'open'`),
		until("the machine's boot line in the pane", `document.getElementById('console-out')?.textContent.includes('booted from')`))
	shot(ctx, t, "ui-node.png")

	if got := errs.all(); len(got) > 0 {
		t.Errorf("the page reported errors: %v", got)
	}

	// A fake-hardware node's console enabled from its page: the pane tries
	// the console's WebSocket and says why there is no stream (a fake
	// console serves nothing), without a page error.
	fake := createNode(t, dev.APIURL(), `{"driver": "fake-hardware", "name": "fake-console"}`)
	seen := len(errs.all())
	console := `document.getElementById('console-status')?.dataset.state`
	run("enable a fake console from the page", chromedp.Navigate(dev.APIURL()+"/ui#/node/"+fake),
		until("the console disabled", console+` === 'disabled'`),
		chromedp.Click(`button[data-action="console-on"]`, chromedp.NodeEnabled),
		until("the console's stream refused with a reason", `['no-stream', 'refused'].includes(`+console+`)`))
	for _, e := range errs.all()[seen:] {
		// Chrome logs the refused handshake itself; the page throws nothing.
		if !strings.Contains(e, "/console/ws") {
			t.Errorf("the console pane reported an error: %s", e)
		}
	}

	// A reader, in a tab of its own, through an http_basic API.
	rctx, cancelReader := chromedp.NewContext(bctx)
	defer cancelReader()
	rctx, cancel2 := context.WithTimeout(rctx, 60*time.Second)
	defer cancel2()
	auth := http.Header{}
	(&http.Request{Header: auth}).SetBasicAuth("viewer", "viewer-pw")
	type counts struct{ Total, Enabled int }
	var got counts
	var status int
	err = chromedp.Do(rctx,
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return chromedp.Void{}, err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Authorization": auth.Get("Authorization")}})
			return chromedp.Void{}, err
		},
		chromedp.Navigate(reader+"/ui#/node/"+deployed),
		until("the reader's node page", `document.querySelectorAll('#actions button.action').length > 0 && document.getElementById('node-provision-state')?.dataset.state === 'active'`),
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			var err error
			got, err = chromedp.Evaluate[counts](`({Total: document.querySelectorAll('#actions button.action').length,
				Enabled: document.querySelectorAll('#actions button.action:not(:disabled)').length})`)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			status, err = chromedp.Evaluate[int](`fetch('/v1/nodes/`+deployed+`/states/power', {method: 'PUT',
				headers: {'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': 'latest'},
				body: JSON.stringify({target: 'power off'})}).then(r => r.status)`, chromedp.EvalAwaitPromise)(ctx, tg)
			return chromedp.Void{}, err
		})
	if err != nil {
		t.Fatalf("the reader's page: %v", err)
	}
	if got.Total == 0 || got.Enabled != 0 {
		t.Errorf("the reader sees %d of %d actions enabled, want none", got.Enabled, got.Total)
	}
	if status != http.StatusForbidden {
		t.Errorf("the reader's power off answered %d, want 403", status)
	}
}

// createNode creates a node through the API and returns its UUID.
func createNode(t *testing.T, apiURL, body string) string {
	t.Helper()
	var n struct {
		UUID string `json:"uuid"`
	}
	apiCall(t, http.MethodPost, apiURL+"/v1/nodes", body, http.StatusCreated, &n)
	return n.UUID
}

// apiCall sends body to the API at the latest version and fails t unless
// the answer has status want; out, when not nil, receives the answer.
func apiCall(t *testing.T, method, url, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		msg, _ := io.ReadAll(res.Body)
		t.Fatalf("%s %s: %d %s, want %d", method, url, res.StatusCode, msg, want)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
}

// pageErrors collects what the page reports as errors: exceptions nothing
// caught, console.error calls and error entries of the browser's log.
type pageErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *pageErrors) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var args []string
		for _, a := range ev.Args {
			args = append(args, string(a.Value)+a.Description)
		}
		msg = "console.error: " + strings.Join(args, " ")
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level != cdplog.EntryLevelError {
			return
		}
		msg = fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	p.errs = append(p.errs, msg)
	p.mu.Unlock()
}

func (p *pageErrors) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// shot saves a screenshot of the page to docs/ with UPDATE_SCREENSHOTS=1
// (the README shows them).
func shot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	if os.Getenv("UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil { //nolint:gosec // a picture for the docs
		t.Fatal(err)
	}
}

// startReaderAPI serves a second API on dev's NATS and Redis with
// http_basic, where "viewer" (password viewer-pw) is a reader; it returns
// its URL.
func startReaderAPI(t *testing.T, dev *fleet.Dev) string {
	t.Helper()
	ctx := t.Context()
	hash, err := bcrypt.GenerateFromPassword([]byte("viewer-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("viewer:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{dev.NATSURL()}, Name: "ui-test-reader"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rc, err := fleet.NewRedis(ctx, dev.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	quiet := slog.New(slog.DiscardHandler)
	infra, err := fleet.NewInfra(ctx, nc, rc, fleet.InfraConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(infra.Close)
	drivers, err := fleet.ValidateOnlyDrivers(fleet.DefaultHardwareTypes)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fleet.NewAPI(infra, drivers, fleet.APIConfig{Host: "ui-test", API: api.Config{
		Auth: api.AuthHTTPBasic, HTPasswd: htpasswd, Roles: map[string]api.Role{"viewer": api.RoleReader}, Logger: quiet,
	}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, l) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("reader API: %v", err)
		}
	})
	return "http://" + l.Addr().String()
}

// startPests runs n pests on node's lock until ctx ends: each waits in line
// (patient mode) for the lock, holds it a moment and lines up again, as the
// benchmarks' pests (internal/fleetbench) imitate a console, but waiting.
// They are a process of the fleet, wired as every process is (NewInfra):
// their lock changes go on EVENTS, which is all the lock view follows.
func startPests(ctx context.Context, t *testing.T, dev *fleet.Dev, node string, n int) *sync.WaitGroup {
	t.Helper()
	rc, err := fleet.NewRedis(ctx, dev.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(dev.NATSURL(), nats.Name("pests"))
	if err != nil {
		t.Fatal(err)
	}
	infra, err := fleet.NewInfra(ctx, nc, rc, fleet.InfraConfig{Lock: lock.Config{Holder: "pest"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	lk := infra.Locks
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				l, err := lk.Acquire(ctx, node, &lock.Options{Mode: lock.Patient, Purpose: "console"})
				if err != nil {
					_ = wait.Sleep(ctx, 50*time.Millisecond) // Redis hiccup: try again, not in a hot loop
					continue
				}
				_ = wait.Sleep(ctx, 300*time.Millisecond) // hold it; stopping ends the hold
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_ = l.Release(rctx)
				cancel()
			}
		})
	}
	t.Cleanup(func() {
		wg.Wait()
		infra.Close()
		nc.Close()
		_ = rc.Close()
	})
	return &wg
}
