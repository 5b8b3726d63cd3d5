package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// TestConsolePut: enabling a console that runs (sim) is a task for a
// conductor, sent under the node's lock as a power action is, answered 202
// with Ironic's Location; asking for the state the console is already in
// sends nothing. GET shows console_info as Ironic: {type, url}.
func TestConsolePut(t *testing.T) {
	e := newEnv(t)
	n := e.createNode("console-put", map[string]any{"console_interface": "sim"})
	r := e.do(http.MethodPut, "/v1/nodes/"+n+"/states/console", map[string]any{"enabled": true})
	mustStatus(t, r, http.StatusAccepted)
	if loc := r.header.Get("Location"); !strings.HasSuffix(loc, "/v1/nodes/"+n+"/states/console") {
		t.Errorf("Location %q", loc)
	}
	var sent []wire.Task
	for _, task := range e.tasks() {
		if task.Op == wire.OpConsole {
			sent = append(sent, task)
		}
	}
	if len(sent) != 1 || sent[0].Node != n || sent[0].Ticket == "" {
		t.Fatalf("console tasks %+v: want one for %s, with a ticket", sent, n)
	}
	var p wire.ConsoleParams
	if err := json.Unmarshal(sent[0].Params, &p); err != nil || !p.Enabled {
		t.Fatalf("params %s: want enabled", sent[0].Params)
	}
	mustStatus(t, e.do(http.MethodPut, "/v1/nodes/"+n+"/states/console", map[string]any{"enabled": false}), http.StatusAccepted)
	if got := len(e.tasks()); got != 1 {
		t.Errorf("%d tasks after disabling a disabled console, want still 1", got)
	}

	// What a conductor records once the console runs.
	// The conductor claims the task's ticket, does its work, releases.
	lk, err := e.locker.Acquire(t.Context(), n, &lock.Options{Mode: lock.Patient, Ticket: sent[0].Ticket, Purpose: "console"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lk.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.edit(n, func(nd *wire.Node) {
		nd.ConsoleEnabled = true
		nd.Console = &wire.Console{Type: "socat", URL: "tcp://127.0.0.1:10001", Conductor: "c1"}
	})
	r = e.do(http.MethodGet, "/v1/nodes/"+n+"/states/console", nil)
	mustStatus(t, r, http.StatusOK)
	got := r.json(t)
	info, _ := got["console_info"].(map[string]any)
	if got["console_enabled"] != true || info["type"] != "socat" || info["url"] != "tcp://127.0.0.1:10001" || len(info) != 2 {
		t.Errorf("console state %v: want enabled, console_info {type socat, url tcp://127.0.0.1:10001}", got)
	}
}

// lockedBuffer is a log sink tests read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConsoleWebSocket: GET /v1/nodes/{n}/console/ws is for admins only
// (401 without credentials, 403 for a reader), refuses a console that is
// not enabled with Ironic's NodeConsoleNotEnabled (400), and streams an
// enabled console both ways as binary messages; each session is logged
// with its user and byte counts, and no credentials.
func TestConsoleWebSocket(t *testing.T) {
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	var lines []string
	for _, u := range []string{"admin", "viewer"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(h))
	}
	if err := os.WriteFile(htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	e := newEnv(t, func(c *api.Config) {
		c.Auth, c.HTPasswd = api.AuthHTTPBasic, htpasswd
		c.Roles = map[string]api.Role{"viewer": api.RoleReader}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	auth := func(u string) http.Header {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(u, u+"-pw")
		return http.Header{"Authorization": req.Header["Authorization"]}
	}
	n := e.createNodeAs(t, auth("admin"), "console-ws")

	// The console: a TCP server standing in for socat.
	ln, err := new(net.ListenConfig).Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	typed := make(chan string, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("login: \x00\xff"))
		buf := make([]byte, 64)
		k, _ := c.Read(buf)
		typed <- string(buf[:k])
	}()
	wsURL := "ws" + strings.TrimPrefix(e.url, "http") + "/v1/nodes/" + n + "/console/ws"

	for _, tc := range []struct {
		name   string
		header http.Header
		status int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"reader", auth("viewer"), http.StatusForbidden},
		{"not enabled", auth("admin"), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, res, err := websocket.Dial(t.Context(), wsURL, &websocket.DialOptions{HTTPHeader: tc.header})
			if res != nil && res.Body != nil {
				defer res.Body.Close()
			}
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("dialled, want refused")
			}
			if res == nil || res.StatusCode != tc.status {
				t.Fatalf("response %v (%v), want %d", res, err, tc.status)
			}
			if tc.status == http.StatusBadRequest {
				var body bytes.Buffer
				_, _ = body.ReadFrom(res.Body)
				if !strings.Contains(body.String(), "Console access is not enabled on node "+n) {
					t.Errorf("body %s: want NodeConsoleNotEnabled", body.String())
				}
			}
		})
	}

	e.edit(n, func(nd *wire.Node) {
		nd.ConsoleEnabled = true
		nd.Console = &wire.Console{Type: "socat", URL: "tcp://" + ln.Addr().String(), Conductor: "c1"}
	})
	c, res, err := websocket.Dial(t.Context(), wsURL, &websocket.DialOptions{HTTPHeader: auth("admin")})
	if res != nil && res.Body != nil {
		defer res.Body.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.CloseNow() }()
	var got []byte
	for !bytes.Contains(got, []byte("login: \x00\xff")) {
		typ, msg, err := c.Read(t.Context())
		if err != nil {
			t.Fatalf("read %q: %v", got, err)
		}
		if typ != websocket.MessageBinary {
			t.Errorf("message type %v, want binary", typ)
		}
		got = append(got, msg...)
	}
	if err := c.Write(t.Context(), websocket.MessageBinary, []byte("root\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-typed:
		if s != "root\r" {
			t.Errorf("the console received %q, want root\\r", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing typed reached the console")
	}
	<-served // the console hangs up: the session ends
	_ = c.Close(websocket.StatusNormalClosure, "")
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "console session ended"); {
		if time.Now().After(deadline) {
			t.Fatalf("no session end logged: %s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	for _, want := range []string{"console session started", "user=admin", "node=" + n, "bytes_in=5", "bytes_out=9"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "admin-pw") || strings.Contains(out, "Basic ") {
		t.Errorf("logs show credentials:\n%s", out)
	}
}

// createNodeAs creates a sim node with credentials h.
func (e *env) createNodeAs(t *testing.T, h http.Header, name string) string {
	t.Helper()
	r := e.do(http.MethodPost, "/v1/nodes", map[string]any{"driver": "sim", "name": name, "driver_info": map[string]any{"sim_machine": name}},
		"Authorization", h.Get("Authorization"))
	mustStatus(t, r, http.StatusCreated)
	return r.json(t)["uuid"].(string)
}
