package fleetbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ironfleet/ironfleet/internal/fleet"
)

// Target is a lifecycle run's external API: the clients drive an
// Ironic-compatible endpoint this process did not start (OpenStack Ironic,
// or an ironfleet fleet of separate processes from `make up`), so that
// both are measured by the same clients. Only what is seen from outside is
// measured: the fleet-side marks of the timeline (events, the conductors'
// logs) and JetStream's counts are unknown, and the CPU is read from the
// target's processes.
type Target struct {
	// URL is the API's base URL (http://127.0.0.1:6385).
	URL string
	// Driver is the nodes' driver when Machines is empty: "fake-hardware"
	// (the only one that needs no machine; empty means it).
	Driver string
	// Machines, when set, are the machines the nodes are (node i is
	// Machines[i], with its driver, driver_info, instance_info and MACs):
	// what `ironfleet sim` prints (ReadMachines).
	Machines []Machine
	// PIDs are the target's processes; their CPU and their descendants'
	// (forked API workers) is the target's CPU. At least one is required:
	// without it CPU per node would not compare.
	PIDs []int
	// ConductorMetrics are the conductors' Prometheus endpoints; from
	// ironfleet_conductor_tasks_total on each, read before and after the
	// run, come the tasks by outcome and each conductor's share. Empty
	// means both are unknown (Ironic has no such endpoint).
	ConductorMetrics []string
}

// Machine is one machine a node is enrolled as.
type Machine struct {
	Name         string         `json:"name"`
	Driver       string         `json:"driver"`
	MACs         []string       `json:"macs"`
	DriverInfo   map[string]any `json:"driver_info"`
	InstanceInfo map[string]any `json:"instance_info"`
}

// TargetResult is what a run against a Target measured beyond
// LifecycleResult's own fields (whose CPU there is the target's plus the
// clients', as in-process it is the whole process's).
type TargetResult struct {
	URL    string `json:"url"`
	Driver string `json:"driver"`
	// Processes is how many processes the CPU was read from (the given
	// PIDs and their descendants at the end of the run).
	Processes int `json:"processes"`
	// CPUSeconds is the target's CPU over the run; ClientCPUSeconds this
	// process's (the clients').
	CPUSeconds       float64 `json:"cpu_seconds"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// ByProcess is CPUSeconds by given process (each with its
	// descendants), in the order given: where the target's CPU went.
	ByProcess []ProcessCPU `json:"by_process"`
	// ActiveSeconds is from the first node's POST to the last node seen
	// active, and ActiveNodesPerSecond the active nodes over it: the
	// throughput when some nodes are stuck, where Seconds also holds the
	// clients waiting for them until the timeout.
	ActiveSeconds        float64 `json:"active_seconds"`
	ActiveNodesPerSecond float64 `json:"active_nodes_per_second"`
	// Conductors is each conductor's tasks over the run, when
	// ConductorMetrics were given.
	Conductors []ConductorShare `json:"conductors,omitempty"`
}

// ProcessCPU is one given process's CPU over the run.
type ProcessCPU struct {
	PID        int     `json:"pid"`
	Command    string  `json:"command"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// ConductorShare is one conductor's part of the run's tasks.
type ConductorShare struct {
	Metrics string  `json:"metrics"`
	Tasks   int     `json:"tasks"`
	Share   float64 `json:"share"`
}

// The hops of a node's timeline seen from the clients alone: what a run
// against a Target can measure of every API.
var targetHops = []struct{ name, from, to string }{
	{"enroll: POST node + port", "create", "created"},
	{"manage: PUT → 202", "created", "manage 202"},
	{"manage: 202 → client sees manageable", "manage 202", "manageable seen"},
	{"provide: PUT → 202", "manageable seen", "provide 202"},
	{"provide: 202 → client sees available", "provide 202", "available seen"},
	{"deploy: PUT → 202", "available seen", "deploy 202"},
	{"deploy: 202 → client sees active", "deploy 202", "active seen"},
	{"total: POST node → active seen", "create", "active seen"},
}

// ReadMachines reads the machines `ironfleet sim` prints, one JSON object
// a line (other lines, such as logs sharing the file, are skipped); a
// machine without a driver is "ipmi", the driver of sim's BMCs.
func ReadMachines(r io.Reader) ([]Machine, error) {
	var out []Machine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") || !strings.Contains(line, `"driver_info"`) {
			continue
		}
		var m Machine
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return nil, fmt.Errorf("fleetbench: machine %q: %w", line, err)
		}
		if m.Name == "" || len(m.MACs) == 0 {
			return nil, fmt.Errorf("fleetbench: machine %q has no name or MAC", line)
		}
		if m.Driver == "" {
			m.Driver = fleet.IPMI
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// enrollee is the node a client creates as node i of a run against t.
func (t *Target) enrollee(i int) (body map[string]any, mac string) {
	if len(t.Machines) > 0 {
		m := t.Machines[i]
		return map[string]any{
			"name": m.Name, "driver": m.Driver, "driver_info": m.DriverInfo,
			"instance_info": m.InstanceInfo, "automated_clean": false,
		}, m.MACs[0]
	}
	name, mac := fleet.SimMachine(i)
	// fake-hardware deploys nothing (Ironic's FakeDeploy.deploy is a no-op
	// step: ironic/drivers/modules/fake.py), so instance_info stays empty.
	return map[string]any{"name": name, "driver": t.Driver, "automated_clean": false}, mac
}

// validate checks t before anything starts and fills its defaults.
func (t *Target) validate(nodes int) error {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("fleetbench: target %q: want an http(s) URL", t.URL)
	}
	if t.Driver == "" {
		t.Driver = fleet.FakeHardware
	}
	switch {
	case len(t.Machines) > 0 && len(t.Machines) < nodes:
		return fmt.Errorf("fleetbench: %d machines for %d nodes", len(t.Machines), nodes)
	case len(t.Machines) == 0 && t.Driver != fleet.FakeHardware:
		return fmt.Errorf("fleetbench: driver %q needs machines (only %s needs none)", t.Driver, fleet.FakeHardware)
	case len(t.PIDs) == 0:
		return errors.New("fleetbench: a target needs its process ids: its CPU per node is what compares")
	}
	for _, pid := range t.PIDs {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
			return fmt.Errorf("fleetbench: target process %d: %w", pid, err)
		}
	}
	return nil
}

// runTarget is RunLifecycle against cfg.Target: the same clients, no
// fleet of ours.
func runTarget(ctx context.Context, cfg LifecycleConfig) (LifecycleResult, error) {
	t := cfg.Target
	r := LifecycleResult{Nodes: cfg.Nodes, Clients: cfg.Clients}
	if err := t.validate(cfg.Nodes); err != nil {
		return r, err
	}
	tr := &TargetResult{URL: t.URL, Driver: t.Driver}
	if len(t.Machines) > 0 {
		tr.Driver = t.Machines[0].Driver
	}
	r.Target = tr
	tl := newTimelines()

	tasks0, err := conductorTasks(ctx, t.ConductorMetrics)
	if err != nil {
		return r, err
	}
	target0, _, err := treeCPU(t.PIDs)
	if err != nil {
		return r, err
	}
	self0, err := selfCPU()
	if err != nil {
		return r, err
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	stats := runClients(lctx, cfg, t.URL, func() *lifecycleClient {
		return &lifecycleClient{c: newClient(t.URL).Client, tl: tl, poll: cfg.Poll, node: t.enrollee}
	})
	r.Seconds = time.Since(start).Seconds()
	target1, procs, err := treeCPU(t.PIDs)
	if err != nil {
		return r, err
	}
	self1, err := selfCPU()
	if err != nil {
		return r, err
	}
	// Read after the run even when it was interrupted, so that what it
	// did is reported.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer scancel()
	tasks1, err := conductorTasks(sctx, t.ConductorMetrics)
	if err != nil {
		return r, err
	}

	var errs []error
	for _, s := range stats {
		r.Active += s.active
		r.Requests += s.requests
		r.Conflicts += s.conflicts
		if s.err != nil {
			errs = append(errs, s.err)
		}
	}
	tr.Processes = procs
	if span := tl.span("create", "active seen"); span > 0 {
		tr.ActiveSeconds = span.Seconds()
		tr.ActiveNodesPerSecond = float64(r.Active) / tr.ActiveSeconds
	}
	tr.ClientCPUSeconds = self1 - self0
	for i, pid := range t.PIDs {
		cpu := target1[i] - target0[i]
		tr.CPUSeconds += cpu
		tr.ByProcess = append(tr.ByProcess, ProcessCPU{PID: pid, Command: command(pid), CPUSeconds: cpu})
	}
	r.NodesPerSecond = float64(r.Active) / r.Seconds
	r.CPUSeconds = tr.CPUSeconds + tr.ClientCPUSeconds
	r.CoresBusy = r.CPUSeconds / r.Seconds
	if r.Active > 0 {
		r.CPUPerNode = r.CPUSeconds / float64(r.Active)
	}
	r.Stuck = cfg.Nodes - r.Active
	if len(t.ConductorMetrics) > 0 {
		r.Outcomes = map[string]int{}
		total := 0
		for i, u := range t.ConductorMetrics {
			n := 0
			for outcome, v := range tasks1[i] {
				d := v - tasks0[i][outcome]
				r.Outcomes[outcome] += d
				n += d
			}
			tr.Conductors = append(tr.Conductors, ConductorShare{Metrics: u, Tasks: n})
			total += n
		}
		for i := range tr.Conductors {
			if total > 0 {
				tr.Conductors[i].Share = float64(tr.Conductors[i].Tasks) / float64(total)
			}
		}
	}
	r.Hops = tl.hopsOf(targetHops)
	return r, errors.Join(errs...)
}

// span is from the earliest mark from to the latest mark to, over every
// node; zero when either was never marked.
func (t *timelines) span(from, to string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first, last time.Time
	for _, m := range t.marks {
		if at, ok := m[from]; ok && (first.IsZero() || at.Before(first)) {
			first = at
		}
		if at, ok := m[to]; ok && at.After(last) {
			last = at
		}
	}
	if first.IsZero() || last.IsZero() {
		return 0
	}
	return last.Sub(first)
}

// selfCPU is the CPU (user + system) this process has used so far.
func selfCPU() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go runs on (proc(5)), which sysconf would only confirm.
const clockTicks = 100

// procStat is what treeCPU reads of one /proc/PID/stat.
type procStat struct {
	ppid int
	// cpu is utime + stime + cutime + cstime: the process's own CPU and
	// that of its children it has waited for (which are gone from /proc).
	cpu float64
}

// treeCPU is the CPU each of the processes pids and all its live
// descendants have used so far, and how many processes that is in all. A
// pid that is gone is an error: the target died during the run.
func treeCPU(pids []int) ([]float64, int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, 0, err
	}
	stats := map[int]procStat{}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil {
			continue // exited since ReadDir
		}
		stats[pid] = s
		children[s.ppid] = append(children[s.ppid], pid)
	}
	out := make([]float64, len(pids))
	seen := map[int]bool{}
	for i, root := range pids {
		if _, ok := stats[root]; !ok {
			return nil, 0, fmt.Errorf("fleetbench: target process %d is gone", root)
		}
		// A pid given twice, or one given under another, counts once.
		queue := []int{root}
		for len(queue) > 0 {
			pid := queue[0]
			queue = queue[1:]
			if seen[pid] {
				continue
			}
			seen[pid] = true
			out[i] += stats[pid].cpu
			queue = append(queue, children[pid]...)
		}
	}
	return out, len(seen), nil
}

// command is pid's command line, shortened for a table ("" once gone).
func command(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	args := strings.Fields(strings.ReplaceAll(string(b), "\x00", " "))
	for i, a := range args {
		args[i] = filepath.Base(a)
	}
	// A script's interpreter says less than the script (python3 ironic-api).
	if len(args) > 1 && strings.HasPrefix(args[0], "python") {
		args = args[1:]
	}
	return strings.Join(args[:min(len(args), 3)], " ")
}

// readStat reads /proc/pid/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	s, err := parseStat(string(b))
	if err != nil {
		return procStat{}, fmt.Errorf("fleetbench: /proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// parseStat reads fields 4 (ppid) and 14–17 (utime, stime, cutime,
// cstime) of a /proc/PID/stat, counted after the command name, which is in
// parentheses and may itself hold spaces and parentheses (proc(5)).
func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("no command name")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, the state
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("%d fields after the command name, want 15 or more", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", err)
	}
	var ticks int64
	for _, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return procStat{}, err
		}
		ticks += n
	}
	return procStat{ppid: ppid, cpu: float64(ticks) / clockTicks}, nil
}

// PIDsNamed are the processes whose command (argv[0]'s base name, or the
// name of the script a python interpreter runs) is one of names: how the
// Ironic harness finds ironic-api and ironic-conductor.
func PIDsNamed(names ...string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		cmd := filepath.Base(args[0])
		if strings.HasPrefix(cmd, "python") && len(args) > 1 {
			cmd = filepath.Base(args[1])
		}
		if slices.Contains(names, cmd) {
			out = append(out, pid)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("fleetbench: no process named %s", strings.Join(names, " or "))
	}
	return out, nil
}

// conductorTasks reads ironfleet_conductor_tasks_total from each metrics
// endpoint: per endpoint, tasks by outcome (summed over operations).
func conductorTasks(ctx context.Context, urls []string) ([]map[string]int, error) {
	out := make([]map[string]int, len(urls))
	for i, u := range urls {
		m, err := scrapeTasks(ctx, u)
		if err != nil {
			return nil, err
		}
		out[i] = m
	}
	return out, nil
}

func scrapeTasks(ctx context.Context, u string) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fleetbench: conductor metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fleetbench: conductor metrics %s: HTTP %d", u, resp.StatusCode)
	}
	return parseTasks(resp.Body)
}

// parseTasks reads the samples of ironfleet_conductor_tasks_total from
// Prometheus's text format (`name{op="deploy",outcome="done"} 12`).
func parseTasks(r io.Reader) (map[string]int, error) {
	const name = "ironfleet_conductor_tasks_total{"
	out := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		labels, value, ok := strings.Cut(line[len(name):], "} ")
		if !ok {
			return nil, fmt.Errorf("fleetbench: metrics line %q", line)
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("fleetbench: metrics line %q: %w", line, err)
		}
		outcome := "unlabelled"
		for l := range strings.SplitSeq(labels, ",") {
			if k, val, ok := strings.Cut(l, "="); ok && k == "outcome" {
				outcome = strings.Trim(val, `"`)
			}
		}
		out[outcome] += int(v)
	}
	return out, sc.Err()
}

// writeTarget is WriteLifecycle for a run against a Target: what the
// clients saw, the target's CPU apart from theirs, and "unknown" for what
// only an in-process fleet shows.
func writeTarget(w io.Writer, r LifecycleResult) error {
	t := r.Target
	tasks := "unknown (no conductor metrics)"
	if r.Outcomes != nil {
		tasks = fmt.Sprint(r.Outcomes)
	}
	fmt.Fprintf(w, "target %s (%s): %d nodes, %d clients: %d active, %d stuck in %.2f s = %.1f nodes/s (last seen active at %.2f s: %.1f nodes/s); CPU %.1f s (target %.1f s in %d processes, clients %.1f s) = %.4f CPU-s/node, %.2f cores busy; %d requests, %d 409/503; tasks %s\n",
		t.URL, t.Driver, r.Nodes, r.Clients, r.Active, r.Stuck, r.Seconds, r.NodesPerSecond, t.ActiveSeconds, t.ActiveNodesPerSecond, r.CPUSeconds,
		t.CPUSeconds, t.Processes, t.ClientCPUSeconds, r.CPUPerNode, r.CoresBusy, r.Requests, r.Conflicts, tasks)
	for _, p := range t.ByProcess {
		fmt.Fprintf(w, "process %d (%s): %.1f CPU-s\n", p.PID, p.Command, p.CPUSeconds)
	}
	for _, c := range t.Conductors {
		fmt.Fprintf(w, "conductor %s: %d tasks (%.0f%%)\n", c.Metrics, c.Tasks, 100*c.Share)
	}
	fmt.Fprint(w, "JetStream messages stored per node: unknown (not our fleet's process)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "hop (as the clients see it)\tnodes\tp50 ms\tp99 ms\tmax ms\t")
	for _, h := range r.Hops {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t\n", h.Name, h.Nodes, h.P50ms, h.P99ms, h.Maxms)
	}
	return tw.Flush()
}
