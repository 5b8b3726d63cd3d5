package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/redisproc"
	"github.com/ironfleet/ironfleet/transport"
)

func newBenchAPICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api",
		Short: "GET node and filtered list latency and throughput: ironfleet's API vs a bare Gin handler",
		Long: `bench api starts an embedded NATS server, a private redis-server and the API
(noauth), seeds nodes through the API, then has concurrent clients GET one node
and list nodes, each for --duration, against the API and against a bare Gin
handler answering the same JSON documents from memory (the ceiling), in one
run. The lists: list_filtered filters by conductor group and maintenance in
creation order; list_sorted_paged adds a resource class, sorts by name
descending and starts each page after a different marker. Before measuring it
pages through every node with limit=1000, following "next", and fails unless
each node comes exactly once.`,
		Args: cobra.NoArgs,
		RunE: runBenchAPI,
	}
	f := cmd.Flags()
	f.Bool("json", false, "print one JSON object per benchmark and implementation per line")
	f.Int("nodes", 1000, "nodes to seed")
	f.Int("clients", 32, "concurrent clients")
	f.Duration("duration", 5*time.Second, "how long each benchmark runs per implementation")
	f.Duration("warmup", time.Second, "unmeasured load before each measurement")
	f.Int("rounds", 5, "slices each benchmark's --duration is cut into, ironfleet and bare Gin taking turns")
	f.String("redis-server", redisproc.DefaultBinary, "redis-server binary to run")
	f.String("cpuprofile", "", "write CPU profiles of each benchmark's measured load (both implementations, not the seeding) to this path + .<bench>")
	return cmd
}

// apiBenchResult is one benchmark's figures for one implementation.
type apiBenchResult struct {
	Bench    string  `json:"bench"`
	Impl     string  `json:"impl"`
	Requests int     `json:"requests"`
	ReqPerS  float64 `json:"req_per_s"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	Clients  int     `json:"clients"`
	Nodes    int     `json:"nodes"`
	// RatioToBare is this implementation's req/s over the bare handler's.
	RatioToBare float64 `json:"ratio_to_bare"`
	// CPUusPerReq is the CPU time per request of this process (clients,
	// API, embedded NATS) and redis-server together: on a shared machine,
	// where throughput moves with the neighbours, the steadier cost.
	CPUusPerReq float64 `json:"cpu_us_per_req"`
	// CPURatioToBare is the bare handler's CPU per request over this
	// implementation's: like RatioToBare, 1 is the ceiling.
	CPURatioToBare float64 `json:"cpu_ratio_to_bare"`
}

func runBenchAPI(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	f := cmd.Flags()
	asJSON, _ := f.GetBool("json")
	nNodes, _ := f.GetInt("nodes")
	clients, _ := f.GetInt("clients")
	dur, _ := f.GetDuration("duration")
	warmup, _ := f.GetDuration("warmup")
	redisBin, _ := f.GetString("redis-server")
	profPath, _ := f.GetString("cpuprofile")
	rounds, _ := f.GetInt("rounds")
	if nNodes < 2 || clients < 1 || dur <= 0 || warmup < 0 || rounds < 1 {
		return errors.New("bench api: --nodes ≥ 2, --clients ≥ 1, --duration > 0, --warmup ≥ 0, --rounds ≥ 1")
	}

	dir, err := os.MkdirTemp("", "ironfleet-bench-api-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	ns, err := transport.StartEmbedded(startCtx, transport.EmbeddedConfig{StoreDir: dir + "/nats"})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	rs, err := redisproc.Start(startCtx, redisproc.Config{Dir: dir, Binary: redisBin})
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = rs.Stop(sctx, false)
	}()
	nc, err := nats.Connect(ns.URL(), nats.Name("ironfleet-bench-api"))
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	defer nc.Close()
	ropts := rs.Options()
	ropts.ContextTimeoutEnabled = true
	ropts.PoolSize = 64
	rc := redis.NewClient(ropts)
	defer rc.Close()

	quiet := slog.New(slog.DiscardHandler)
	infra, err := fleet.NewInfra(startCtx, nc, rc, fleet.InfraConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer infra.Close()
	drivers, err := fleet.ValidateOnlyDrivers([]string{fleet.Sim})
	if err != nil {
		return err
	}
	srv, err := fleet.NewAPI(infra, drivers, fleet.APIConfig{Host: "bench", API: api.Config{Logger: quiet, Registerer: prometheus.NewRegistry()}}) //nolint:contextcheck // New does no I/O
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	sctx, stop := context.WithCancel(gctx)
	defer func() { stop(); _ = g.Wait() }()
	serve := func(h http.Handler) (string, error) {
		l, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error { return graceful.Serve(sctx, hs, l, time.Second) })
		return "http://" + l.Addr().String(), nil
	}
	ours, err := serve(srv.Handler())
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients * 2}}

	// Seed through the API, 16 at a time: two conductor groups, three
	// resource classes, every tenth node in maintenance.
	seedStart := time.Now()
	var uuids []string
	var mu sync.Mutex
	seed, sctx2 := errgroup.WithContext(ctx)
	seed.SetLimit(16)
	for i := range nNodes {
		seed.Go(func() error {
			group := "rack1"
			if i%2 == 1 {
				group = "rack2"
			}
			class := []string{"small", "medium", "large"}[i%3]
			body := fmt.Sprintf(`{"name":"bench-%05d","driver":"sim","driver_info":{"sim_machine":"m-%05d"},"conductor_group":%q,"resource_class":%q}`, i, i, group, class)
			var out struct {
				UUID string `json:"uuid"`
			}
			if err := benchDo(sctx2, hc, http.MethodPost, ours+"/v1/nodes", body, http.StatusCreated, &out); err != nil {
				return err
			}
			if i%10 == 9 {
				const patch = `[{"op":"replace","path":"/maintenance","value":true}]`
				if err := benchDo(sctx2, hc, http.MethodPatch, ours+"/v1/nodes/"+out.UUID, patch, http.StatusOK, nil); err != nil {
					return err
				}
			}
			mu.Lock()
			uuids = append(uuids, out.UUID)
			mu.Unlock()
			return nil
		})
	}
	if err := seed.Wait(); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	seeded := time.Since(seedStart)
	slices.Sort(uuids)
	walk, err := benchWalk(ctx, hc, ours, len(uuids))
	if err != nil {
		return err
	}
	getPath := func(i int) string { return "/v1/nodes/" + uuids[i%len(uuids)] }
	const listPath = "/v1/nodes?conductor_group=rack1&maintenance=false&limit=100"
	// Markers are the sorted list's own matches, in a fixed pseudo-random
	// order, all but the last 100: every page starts somewhere else in the
	// name order and is full, like the bare handler's (the first page).
	const sortedQuery = "/v1/nodes?conductor_group=rack1&resource_class=small&maintenance=false&sort_key=name&sort_dir=desc"
	matches, _, err := benchPages(ctx, hc, ours, sortedQuery+"&limit=1000")
	if err != nil {
		return err
	}
	markers := matches[:max(len(matches)-100, 0)]
	sortedPath := func(i int) string {
		if len(markers) == 0 { // too few nodes for a second page: the first
			return sortedQuery + "&limit=100"
		}
		return sortedQuery + "&limit=100&marker=" + markers[(i*7919)%len(markers)]
	}

	// The bare Gin ceiling answers the same documents from memory.
	var nodeDoc, listDoc map[string]any
	if err := benchDo(ctx, hc, http.MethodGet, ours+getPath(0), "", http.StatusOK, &nodeDoc); err != nil {
		return err
	}
	if err := benchDo(ctx, hc, http.MethodGet, ours+listPath, "", http.StatusOK, &listDoc); err != nil {
		return err
	}
	var sortedDoc map[string]any
	if err := benchDo(ctx, hc, http.MethodGet, ours+sortedQuery+"&limit=100", "", http.StatusOK, &sortedDoc); err != nil {
		return err
	}
	gin.SetMode(gin.ReleaseMode)
	bare := gin.New()
	bare.GET("/v1/nodes/:node", func(c *gin.Context) { c.JSON(http.StatusOK, nodeDoc) })
	bare.GET("/v1/nodes", func(c *gin.Context) {
		if c.Query("sort_key") != "" {
			c.JSON(http.StatusOK, sortedDoc)
			return
		}
		c.JSON(http.StatusOK, listDoc)
	})
	bareURL, err := serve(bare)
	if err != nil {
		return err
	}

	var results []apiBenchResult
	for _, b := range []struct {
		name string
		path func(i int) string
	}{
		{"get_node", getPath},
		{"list_filtered", func(int) string { return listPath }},
		{"list_sorted_paged", sortedPath},
	} {
		// The two implementations take turns in short slices, so that
		// load from outside (a shared machine) falls on both alike.
		impls := []struct{ name, url string }{{"ironfleet", ours}, {"bare-gin", bareURL}}
		for _, impl := range impls {
			if _, err := benchLoad(ctx, hc, impl.url, b.path, clients, warmup); err != nil {
				return err
			}
		}
		stopProf := func() {}
		if profPath != "" {
			if stopProf, err = startProfile(fmt.Sprintf("%s.%s", profPath, b.name)); err != nil {
				return err
			}
		}
		lats := make([][]time.Duration, len(impls))
		cpu := make([]time.Duration, len(impls))
		for range rounds {
			for i, impl := range impls {
				before, err := benchCPU(ctx, rc)
				if err != nil {
					stopProf()
					return err
				}
				lat, err := benchLoad(ctx, hc, impl.url, b.path, clients, dur/time.Duration(rounds))
				if err != nil {
					stopProf()
					return err
				}
				after, err := benchCPU(ctx, rc)
				if err != nil {
					stopProf()
					return err
				}
				lats[i] = append(lats[i], lat...)
				cpu[i] += after - before
			}
		}
		stopProf()
		var pair []apiBenchResult
		for i, impl := range impls {
			lat := lats[i]
			slices.Sort(lat)
			pair = append(pair, apiBenchResult{
				Bench: b.name, Impl: impl.name, Requests: len(lat), ReqPerS: float64(len(lat)) / dur.Seconds(),
				P50us: quantileUS(lat, 0.50), P99us: quantileUS(lat, 0.99), Clients: clients, Nodes: nNodes,
				CPUusPerReq: float64(cpu[i].Microseconds()) / float64(max(len(lat), 1)),
			})
		}
		for i := range pair {
			pair[i].RatioToBare = pair[i].ReqPerS / pair[len(pair)-1].ReqPerS
			pair[i].CPURatioToBare = pair[len(pair)-1].CPUusPerReq / pair[i].CPUusPerReq
		}
		results = append(results, pair...)
	}

	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		if err := enc.Encode(walk); err != nil {
			return err
		}
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "bench\timpl\treq/s\tp50 µs\tp99 µs\tvs bare\tcpu µs/req\tcpu vs bare\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%.2f×\t%.0f\t%.2f×\t\n", r.Bench, r.Impl, r.ReqPerS, r.P50us, r.P99us, r.RatioToBare,
			r.CPUusPerReq, r.CPURatioToBare)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%d clients, %d nodes (seeded in %s), %s per row\nlimit=%d walk: %d pages, %d nodes each exactly once, %s (%.1f ms a page)\n",
		clients, nNodes, seeded.Round(time.Millisecond), dur, walk.Limit, walk.Pages, walk.Nodes, walk.Took.Round(time.Millisecond),
		float64(walk.Took.Microseconds())/1000/float64(walk.Pages))
	return err
}

// benchCPU is the CPU time used so far by this process and by the
// redis-server behind rc (INFO cpu: its main thread and children).
func benchCPU(ctx context.Context, rc *redis.Client) (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	own := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	info, err := rc.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO cpu: %w", err)
	}
	var redisSec float64
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("redis INFO cpu %s: %w", k, err)
			}
			redisSec += f
		}
	}
	return own + time.Duration(redisSec*float64(time.Second)), nil
}

// startProfile starts a CPU profile written to path and returns what stops it.
func startProfile(path string) (func(), error) {
	pf, err := os.Create(path) //nolint:gosec // an operator-given path
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		_ = pf.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = pf.Close() }, nil
}

// apiWalk is the limit=1000 walk through every node.
type apiWalk struct {
	Bench string        `json:"bench"`
	Limit int           `json:"limit"`
	Pages int           `json:"pages"`
	Nodes int           `json:"nodes"`
	Took  time.Duration `json:"took_ns"`
}

// benchWalk pages through the whole node list at limit=1000 following
// "next" and checks that it yields want nodes, each exactly once.
func benchWalk(ctx context.Context, hc *http.Client, base string, want int) (apiWalk, error) {
	w := apiWalk{Bench: "walk", Limit: 1000}
	start := time.Now()
	uuids, pages, err := benchPages(ctx, hc, base, "/v1/nodes?limit=1000")
	w.Took, w.Pages, w.Nodes = time.Since(start), pages, len(uuids)
	if err != nil {
		return w, err
	}
	if w.Nodes != want {
		return w, fmt.Errorf("walk: %d nodes in %d pages, want %d", w.Nodes, w.Pages, want)
	}
	return w, nil
}

// benchPages follows "next" from path and returns the nodes' UUIDs in the
// order the pages gave them, failing if one comes twice.
func benchPages(ctx context.Context, hc *http.Client, base, path string) ([]string, int, error) {
	var uuids []string
	seen := map[string]bool{}
	pages := 0
	for next := base + path; next != ""; {
		var page struct {
			Nodes []struct {
				UUID string `json:"uuid"`
			} `json:"nodes"`
			Next string `json:"next"`
		}
		if err := benchDo(ctx, hc, http.MethodGet, next, "", http.StatusOK, &page); err != nil {
			return uuids, pages, err
		}
		pages++
		for _, n := range page.Nodes {
			if seen[n.UUID] {
				return uuids, pages, fmt.Errorf("%s: node %s came twice (page %d)", path, n.UUID, pages)
			}
			seen[n.UUID] = true
			uuids = append(uuids, n.UUID)
		}
		next = page.Next
	}
	return uuids, pages, nil
}

// benchLoad has clients send GETs to base+path(i) back to back for d and
// returns every request's latency.
func benchLoad(ctx context.Context, hc *http.Client, base string, path func(int) string, clients int, d time.Duration) ([]time.Duration, error) {
	if d == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lats := make([][]time.Duration, clients)
	g, gctx := errgroup.WithContext(ctx)
	for w := range clients {
		g.Go(func() error {
			for i := w; ; i += clients {
				start := time.Now()
				err := benchDo(gctx, hc, http.MethodGet, base+path(i), "", http.StatusOK, nil)
				if gctx.Err() != nil {
					return nil // the time is up; the cut-off request does not count
				}
				if err != nil {
					return err
				}
				lats[w] = append(lats[w], time.Since(start))
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(lats...), nil
}

// benchDo sends one request and checks its status; out, when set, receives
// the decoded body.
func benchDo(ctx context.Context, hc *http.Client, method, url, body string, want int, out any) error {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-OpenStack-Ironic-API-Version", "latest")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, url, res.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func quantileUS(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Microseconds())
}
