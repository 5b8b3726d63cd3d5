package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// withUsers turns http_basic on with an admin "admin" and a reader
// "viewer", passwords <user>-pw.
func withUsers(t *testing.T) envOption {
	t.Helper()
	var lines []string
	for _, u := range []string{"admin", "viewer"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(h))
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *api.Config) {
		c.Auth, c.HTPasswd = api.AuthHTTPBasic, path
		c.Roles = map[string]api.Role{"viewer": api.RoleReader}
	}
}

func basicHeader(user string) []string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, user+"-pw")
	return []string{"Authorization", req.Header.Get("Authorization")}
}

// TestUIRoutes: the web console's page, assets and session are served under
// the API's own authentication, and the session tells a reader's page it
// may not act.
func TestUIRoutes(t *testing.T) {
	e := newEnv(t, withUsers(t))
	tests := []struct {
		name       string
		path       string
		hdr        []string
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"page needs a user", "/ui", nil, 401, "application/json", ""},
		{"watch needs a user", "/v1/watch", nil, 401, "application/json", ""},
		{"page", "/ui", basicHeader("viewer"), 200, "text/html", `src="/ui/static/app.js"`},
		{"page with a slash", "/ui/", basicHeader("viewer"), 200, "text/html", `src="/ui/static/app.js"`},
		{"script", "/ui/static/app.js", basicHeader("viewer"), 200, "javascript", "new EventSource('/v1/watch')"},
		{"style", "/ui/static/style.css", basicHeader("viewer"), 200, "text/css", ".term"},
		{"no such asset", "/ui/static/nope.js", basicHeader("viewer"), 404, "", ""},
		{"reader's session", "/ui/session", basicHeader("viewer"), 200, "application/json", `"can_act":false`},
		{"admin's session", "/ui/session", basicHeader("admin"), 200, "application/json", `"can_act":true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tt.path, nil, tt.hdr...)
			mustStatus(t, r, tt.wantStatus)
			if got := r.header.Get("Content-Type"); !strings.Contains(got, tt.wantType) {
				t.Errorf("Content-Type %q, want %q", got, tt.wantType)
			}
			if !strings.Contains(string(r.body), tt.wantBody) {
				t.Errorf("body %.300q lacks %q", r.body, tt.wantBody)
			}
			if tt.wantStatus == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate: the browser would not ask for a user")
			}
			if tt.wantStatus == 200 && strings.HasPrefix(tt.path, "/ui") && tt.path != "/ui/session" &&
				!strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", r.header.Get("Content-Security-Policy"))
			}
		})
	}
	r := e.do(http.MethodGet, "/ui/session", nil, basicHeader("viewer")...)
	var s struct {
		User   string              `json:"user"`
		Role   string              `json:"role"`
		States map[string][]string `json:"states"`
	}
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	if s.User != "viewer" || s.Role != "reader" || !contains(s.States["wait"], "wait call-back") || !contains(s.States["failed"], "deploy failed") {
		t.Errorf("session %s", r.body)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// sse reads a Server-Sent Events stream.
type sse struct {
	t  *testing.T
	sc *bufio.Scanner
	// lockEvents records the lock.* events read, as "type holder".
	lockEvents []string
}

// next reads the next message (comments and retry lines skipped).
func (s *sse) next() (name string, data []byte) {
	s.t.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" && name != "":
			var ev wire.Event
			if name == "event" && json.Unmarshal(data, &ev) == nil && strings.HasPrefix(string(ev.Type), "lock.") {
				s.lockEvents = append(s.lockEvents, string(ev.Type)+" "+ev.Holder)
			}
			return name, data
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = []byte(strings.TrimPrefix(line, "data: "))
		}
	}
	s.t.Fatalf("the stream ended: %v", s.sc.Err())
	return "", nil
}

// until reads messages until one named name satisfies ok.
func (s *sse) until(name string, ok func(data []byte) bool) []byte {
	s.t.Helper()
	for {
		n, d := s.next()
		if n == name && ok(d) {
			return d
		}
	}
}

// TestUIWatchStream: GET /v1/watch starts with the lock view, then sends a
// node's lock when it is taken, its line as it forms and drains, and an
// event of the EVENTS stream as it is published. The resync of the lock
// index is off (an hour): the lock messages come from the lock's events
// alone, which the stream forwards too.
func TestUIWatchStream(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.WatchInterval = time.Hour })
	node := wire.NewUUID()
	held, err := e.locker.WithHolder("conductor-1").Acquire(t.Context(), node, &lock.Options{Purpose: "deploy"})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/v1/watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, ct)
	}
	s := &sse{t: t, sc: bufio.NewScanner(res.Body)}

	name, data := s.next()
	var first struct {
		At    string `json:"at"`
		Locks []struct {
			Node, Holder string
		} `json:"locks"`
	}
	if err := json.Unmarshal(data, &first); err != nil || name != "locks" {
		t.Fatalf("first message %s %s: %v", name, data, err)
	}
	if len(first.Locks) != 1 || first.Locks[0].Node != node || first.Locks[0].Holder != "conductor-1" || first.At == "" {
		t.Errorf("first message %s, want the held lock", data)
	}

	lineOf := func(want int) func([]byte) bool {
		return func(d []byte) bool {
			var m struct {
				Lock struct {
					Node       string `json:"node"`
					LineLength int    `json:"line_length"`
				} `json:"lock"`
			}
			return json.Unmarshal(d, &m) == nil && m.Lock.Node == node && m.Lock.LineLength == want
		}
	}
	// Two waiters join the line (patient mode), then get the lock in turn.
	wctx, stopWaiters := context.WithCancel(ctx)
	defer stopWaiters()
	got := make(chan *lock.Lock, 2)
	for _, who := range []string{"pest-1", "pest-2"} {
		go func() {
			lk, err := e.locker.WithHolder(who).Acquire(wctx, node, &lock.Options{Mode: lock.Patient, Purpose: "console"})
			if err != nil {
				lk = nil
			}
			got <- lk
		}()
	}
	s.until("lock", lineOf(2))
	if err := held.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.until("lock", lineOf(1))
	for range 2 {
		lk := <-got
		if lk == nil {
			t.Fatal("a waiter never got the lock")
		}
		if err := lk.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	s.until("unlock", func(d []byte) bool { return strings.Contains(string(d), node) })
	// Every change was forwarded as an event (the last release's may come
	// after the unlock: a read caused by an earlier event can see it first).
	for _, want := range []string{
		"lock.queued pest-1", "lock.queued pest-2", "lock.released conductor-1",
		"lock.acquired pest-1", "lock.acquired pest-2", "lock.released pest-1", "lock.released pest-2",
	} {
		for !slices.Contains(s.lockEvents, want) {
			s.next() // the request's deadline ends the stream, and the test, if it never comes
		}
	}

	ev := wire.NewEvent(wire.EventProvisionState, node)
	ev.From, ev.To = "available", "deploying"
	if err := e.bus.PublishEvent(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	d := s.until("event", func(d []byte) bool { return strings.Contains(string(d), ev.ID) })
	var gotEv wire.Event
	if err := json.Unmarshal(d, &gotEv); err != nil || gotEv.Type != wire.EventProvisionState || gotEv.To != "deploying" {
		t.Errorf("event %s: %v", d, err)
	}
}

// TestUICrossOriginWrites: a write a browser sends from another site is
// refused (the console's users' browsers hold their credentials); the
// same write from the API's own page, or from a client that is no
// browser, is not.
func TestUICrossOriginWrites(t *testing.T) {
	e := newEnv(t, withUsers(t))
	host := strings.TrimPrefix(e.url, "http://")
	node := map[string]any{"driver": "fake-hardware"}
	auth := basicHeader("admin")
	tests := []struct {
		name       string
		method     string
		hdr        []string
		wantStatus int
	}{
		{"another site's page", http.MethodPost, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403},
		{"another origin, old browser", http.MethodPost, []string{"Origin", "https://evil.example"}, 403},
		{"the console's own page", http.MethodPost, []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://" + host}, 201},
		{"a client that is no browser", http.MethodPost, nil, 201},
		{"another site may read", http.MethodGet, []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.method == http.MethodPost {
				body = node
			}
			r := e.do(tt.method, "/v1/nodes", body, append(append([]string{}, auth...), tt.hdr...)...)
			mustStatus(t, r, tt.wantStatus)
			if tt.wantStatus == 403 && !strings.Contains(r.fault(t)["faultstring"].(string), "cross-origin") {
				t.Errorf("body %s", r.body)
			}
		})
	}
}
