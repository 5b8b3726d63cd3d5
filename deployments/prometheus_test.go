package deployments

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	devfleet "github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
)

// rulesFile is the alerting rules prometheus.yml loads, and rulesTest its
// promtool unit tests, both under prometheus/.
const (
	rulesFile = "ironfleet-rules.yml"
	rulesTest = "ironfleet-rules.test.yml"
)

// needBinary fails under CI, or skips elsewhere, when bin is not installed
// (scripts/ensure-deps.sh installs it).
func needBinary(t *testing.T, bins ...string) {
	t.Helper()
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			redistest.Unavailable(t, err)
		}
	}
}

// TestAlertingRules checks the shipped rules with Debian's promtool: they
// parse (check rules) and fire when they should and only then (test rules,
// prometheus/ironfleet-rules.test.yml); and prometheus.yml loads them.
// Debian's promtool cannot `check config` prometheus.yml itself: its build
// lacks kubernetes_sd_configs, which the Kubernetes job uses.
func TestAlertingRules(t *testing.T) {
	needBinary(t, "promtool")
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTest}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), "promtool", args...)
			cmd.Dir = "prometheus"
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if !strings.Contains(string(out), "SUCCESS") {
				t.Fatalf("promtool %s said no SUCCESS:\n%s", strings.Join(args, " "), out)
			}
		})
	}
	var files []string
	for _, f := range list(yamlDocs(t, "prometheus/prometheus.yml")[0]["rule_files"]) {
		files = append(files, str(f))
	}
	if len(files) != 1 || files[0] != rulesFile {
		t.Errorf("prometheus.yml rule_files %v, want [%s]", files, rulesFile)
	}
}

// TestDashboardQueriesReturnData runs Debian's prometheus against a dev fleet
// (what `ironfleet dev` runs, in this process), scraping its /metrics every
// second and loading the shipped alerting rules, makes the traffic the
// panels show (a deploy, pests contending for a node's lock), and then asks
// Prometheus's HTTP API for every expression of every Grafana dashboard:
// each must return a non-empty result, so a panel querying a metric that
// is misspelt, or that nothing exports, fails here. Prometheus must also
// have loaded every rule, healthy.
func TestDashboardQueriesReturnData(t *testing.T) {
	needBinary(t, "prometheus", "redis-server")
	exprs := dashboardExprs(t)

	dev, err := devfleet.StartDev(t.Context(), devfleet.DevConfig{
		DataDir: t.TempDir(), APIAddr: "127.0.0.1:0", Nodes: 3, Provide: true, ManualClean: true,
		HeartbeatTimeout: 2 * time.Second,
		Logger:           slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Stop)
	prom := startPrometheus(t, strings.TrimPrefix(dev.APIURL(), "http://"))

	// Traffic: a deploy through the API (conductor tasks, lock handoffs to
	// the deploy's continuation); pests waiting in line for another node's
	// lock until the queries are done (the line panels); and a holder that
	// dies on the third node, evicted when the API next updates that node
	// (the expiries panel).
	c := &client{t: t, base: dev.APIURL()}
	c.waitAll([]string{"sim-0001", "sim-0002", "sim-0003"}, "available", 30*time.Second)
	c.provision("sim-0001", "active")
	pctx, stopPests := context.WithCancel(t.Context())
	pests := startPests(pctx, t, dev.RedisURL(), c.uuid("sim-0002"), 3)
	defer func() { stopPests(); pests.Wait() }()
	dieHolding(t, dev.RedisURL(), c.uuid("sim-0003"))
	c.do(http.MethodPatch, "/v1/nodes/sim-0003", []map[string]string{{"op": "add", "path": "/extra/seen", "value": "a dead holder"}}, nil)
	c.waitAll([]string{"sim-0001"}, "active", 30*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	for _, e := range exprs {
		var res []json.RawMessage
		for {
			if err := prom.query(ctx, e.expr, &res); err != nil {
				t.Fatalf("panel %q: %s: %v", e.panel, e.expr, err)
			}
			if len(res) > 0 {
				break
			}
			if wait.Sleep(ctx, 250*time.Millisecond) != nil {
				t.Fatalf("panel %q: %s returned no data within the deadline", e.panel, e.expr)
			}
		}
	}
	// Every scrape the expressions needed has happened: a misspelt metric
	// gets nothing, which is how a typo'd panel fails above.
	var res []json.RawMessage
	if err := prom.query(ctx, "sum by (provision_state) (ironfleet_api_node)", &res); err != nil || len(res) != 0 {
		t.Errorf("a misspelt metric returned %d series (err %v), want none", len(res), err)
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Name, Health, LastError string
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := prom.get(ctx, "/api/v1/rules", nil, &rules); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" {
				t.Errorf("rule %s: %s", r.Name, r.LastError)
			}
		}
	}
	if n == 0 {
		t.Error("prometheus loaded no rules from " + rulesFile)
	}
}

type panelExpr struct{ panel, expr string }

// dashboardExprs are the expressions of every panel target of every
// dashboard under grafana/.
func dashboardExprs(t *testing.T) []panelExpr {
	t.Helper()
	var out []panelExpr
	for _, p := range files(t, "*.json") {
		b, err := os.ReadFile(p) //nolint:gosec // a file of this repository
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, panel := range list(d["panels"]) {
			for _, tg := range list(dig(panel, "targets")) {
				out = append(out, panelExpr{panel: str(dig(panel, "title")), expr: str(dig(tg, "expr"))})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no dashboard expressions found")
	}
	return out
}

// promServer is a running prometheus's HTTP API.
type promServer struct{ base string }

// startPrometheus runs prometheus, stopped at cleanup, scraping the API's
// /metrics at target every second with the shipped rules loaded, and waits
// until it is ready.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join("prometheus", rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: ironfleet-api
    static_configs:
      - targets: [%q]
`, rules, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	out, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("prometheus", "--config.file="+cfgPath, //nolint:gosec // our own arguments
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("prometheus log:\n%s", tail(b, 40))
		}
	})
	p := &promServer{base: "http://" + addr}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if wait.Sleep(ctx, 100*time.Millisecond) != nil {
			t.Fatalf("prometheus not ready on %s: %v", addr, err)
		}
	}
}

// query runs an instant PromQL query, decoding the result's series into res.
func (p *promServer) query(ctx context.Context, expr string, res *[]json.RawMessage) error {
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return err
	}
	*res = data.Result
	return nil
}

// get calls the HTTP API, decoding its data into out; an error status or
// body (bad PromQL) is an error.
func (p *promServer) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("prometheus %s: %d: %w", path, resp.StatusCode, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("prometheus %s: %s: %s", path, body.Status, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// dieHolding takes node's lock with a short lease and dies holding it: its
// Redis connection closes, so the lease runs out unrenewed and the next
// taker evicts it, as a conductor killed mid-operation leaves its lock.
func dieHolding(t *testing.T, redisURL, node string) {
	t.Helper()
	rc, err := devfleet.NewRedis(t.Context(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lock.New(t.Context(), rc, lock.Config{Holder: "doomed", TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Acquire(t.Context(), node, &lock.Options{Purpose: "dying"}); err != nil {
		t.Fatal(err)
	}
	_ = rc.Close()
	_ = lk.Close() // its subscription is already gone with the connection
}

// uuid is the UUID of the node named name: locks are taken by UUID.
func (c *client) uuid(name string) string {
	c.t.Helper()
	var n struct {
		UUID string `json:"uuid"`
	}
	c.do(http.MethodGet, "/v1/nodes/"+name, nil, &n)
	return n.UUID
}

// startPests runs n pests on node's lock until ctx ends: each waits in line
// (patient mode), holds the lock a moment and lines up again, so that the
// lock view always shows a holder and a line.
func startPests(ctx context.Context, t *testing.T, redisURL, node string, n int) *sync.WaitGroup {
	t.Helper()
	rc, err := devfleet.NewRedis(ctx, redisURL)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lock.New(ctx, rc, lock.Config{Holder: "pest"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				l, err := lk.Acquire(ctx, node, &lock.Options{Mode: lock.Patient, Purpose: "console"})
				if err != nil {
					_ = wait.Sleep(ctx, 50*time.Millisecond) // Redis hiccup or stopping: not a hot loop
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
		_ = lk.Close()
		_ = rc.Close()
	})
	return &wg
}
