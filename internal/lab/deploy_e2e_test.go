//go:build e2e

package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/api"
	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/fleet"
	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/ipmitest"
	"github.com/ironfleet/ironfleet/internal/redistest"
	"github.com/ironfleet/ironfleet/internal/wait"
	"github.com/ironfleet/ironfleet/lock"
	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

// lab is one run's world: NATS, Redis, the API in this process, a
// conductor process with its TFTP server, an image server, one machine
// behind ipmi_sim, and the timeline of the run under way.
type lab struct {
	t        *testing.T
	infra    *fleet.Infra
	apiURL   string // for the operator (the test)
	agentAPI int    // host port of the recording proxy the agent calls
	natsURL  string
	redisURL string
	tftpRoot string
	tftpAddr string
	imageURL string
	imageSum string
	// imageDir holds what the image server serves by name:
	// instance.img (imageURL) and whatever a test adds.
	imageDir string
	machine  *Machine
	bmc      *ipmitest.BMC
	rep      *reports
	bin      string // the ironfleet binary
	cond     *exec.Cmd
	condN    int
	condLogs []string
	mu       sync.Mutex
	tl       *Timeline // the run under way
	handoffs atomic.Int64
}

// mark records a milestone on the run under way.
func (l *lab) mark(name string, at time.Time) {
	l.mu.Lock()
	tl := l.tl
	l.mu.Unlock()
	if tl != nil {
		tl.Mark(name, at)
	}
}

func startLab(t *testing.T, opts ...labOption) *lab {
	t.Helper()
	return startLabMachine(t, MachineConfig{MAC: "52:54:00:1a:b0:10"}, opts...)
}

// startLabMachine is startLab with the machine mc (its AgentPort, TFTP
// and, with withSOL, SerialLine are set here).
func startLabMachine(t *testing.T, mc MachineConfig, opts ...labOption) *lab {
	t.Helper()
	var o labOptions
	for _, opt := range opts {
		opt(&o)
	}
	requireTools(t, "redis-server", "ipmi_sim", "qemu-system-x86_64")
	ctx := t.Context()
	l := &lab{t: t}
	k, rd := agentRamdisk(t)
	l.rep = labReports
	img, sum := instanceImage(t)
	l.imageSum = sum

	l.bin = filepath.Join(buildDir, "ironfleet")
	if _, err := os.Stat(l.bin); err != nil {
		if err := BuildStatic(ctx, "github.com/ironfleet/ironfleet/cmd/ironfleet", l.bin); err != nil {
			t.Fatal(err)
		}
	}

	nats, err := transport.StartEmbedded(ctx, transport.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Shutdown)
	l.natsURL = nats.URL()
	rs := redistest.Start(t)
	l.redisURL = rs.URL()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nc, err := transport.Connect(ctx, transport.ConnectConfig{URLs: []string{l.natsURL}, Name: "lab", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rc, err := fleet.NewRedis(ctx, l.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	l.infra, err = fleet.NewInfra(ctx, nc, rc, fleet.InfraConfig{Lock: lock.Config{TTL: 5 * time.Second, Holder: "lab"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.infra.Close)

	// The API as every API process wires it (ironfleet api, ironfleet dev).
	drivers, err := fleet.ValidateOnlyDrivers(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fleet.NewAPI(l.infra, drivers, fleet.APIConfig{Host: "lab",
		API: api.Config{Auth: api.AuthNone, HeartbeatTimeout: 10 * time.Second, Logger: log}})
	if err != nil {
		t.Fatal(err)
	}
	apiL := listen(t)
	l.apiURL = "http://" + apiL.Addr().String()
	serve(t, func(ctx context.Context) error { return srv.Serve(ctx, apiL) })

	// The agent calls the API through a proxy that notes lookups and heartbeats.
	target, _ := url.Parse(l.apiURL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxyL := listen(t)
	l.agentAPI = proxyL.Addr().(*net.TCPAddr).Port
	serveHTTP(t, proxyL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &statusWriter{ResponseWriter: w}
		proxy.ServeHTTP(rw, r)
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/lookup") && rw.status == http.StatusOK:
			l.mark("agent lookup", time.Now())
		case strings.HasPrefix(r.URL.Path, "/v1/heartbeat/") && rw.status == http.StatusAccepted:
			l.mark("first heartbeat", time.Now())
		}
	}))

	// The images, served as files are, noting when a download ends.
	imgL := listen(t)
	l.imageDir = t.TempDir()
	copyFile(t, img, filepath.Join(l.imageDir, "instance.img"))
	l.imageURL = fmt.Sprintf("http://10.0.2.2:%d/instance.img", imgL.Addr().(*net.TCPAddr).Port)
	serveHTTP(t, imgL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mark("image download started", time.Now())
		http.ServeFile(w, r, filepath.Join(l.imageDir, filepath.Base(r.URL.Path)))
		l.mark("image downloaded", time.Now())
	}))

	// Events: provision states and handoffs, for the timeline.
	ectx, ecancel := context.WithCancel(context.Background())
	edone := make(chan struct{})
	go func() {
		defer close(edone)
		_ = l.infra.Bus.SubscribeEvents(ectx, transport.EventSubscription{NewOnly: true, Follow: true}, func(ev wire.Event) {
			switch ev.Type {
			case wire.EventProvisionState:
				l.mark(ev.To, ev.Time)
			case wire.EventLockHandoff:
				l.handoffs.Add(1)
				l.mark("lock handed to "+string(ev.Op), ev.Time)
			}
		})
	}()
	t.Cleanup(func() { ecancel(); <-edone })

	l.tftpRoot = t.TempDir()
	if err := os.MkdirAll(filepath.Join(l.tftpRoot, "agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{k.Vmlinuz: "agent/vmlinuz", rd: "agent/initramfs"} {
		copyFile(t, src, filepath.Join(l.tftpRoot, dst))
	}
	l.tftpAddr = fmt.Sprintf("127.0.0.1:%d", freeUDPPort(t))
	agentPort := freeTCPPort(t)
	mc.AgentPort, mc.TFTP = agentPort, l.tftpAddr
	var line *SerialLine
	if o.sol {
		var err error
		if line, err = NewSerialLine(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = line.Close() })
		mc.SerialLine = line.MachineAddr()
	}
	l.machine = newMachine(t, mc)
	bmcOpts := []ipmitest.Option{ipmitest.WithChassisProgram(l.machine.Program)}
	if o.sol {
		bmcOpts = append(bmcOpts, ipmitest.WithSOL("tcp:"+line.BMCAddr()))
	}
	l.bmc = ipmitest.Start(t, bmcOpts...)
	l.startConductor(agentPort)
	t.Cleanup(func() {
		var stacks string
		if t.Failed() {
			stacks = l.conductorStacks()
		}
		l.killConductor()
		if t.Failed() {
			for _, f := range l.condLogs {
				b, _ := os.ReadFile(f)
				t.Logf("%s (tail):\n%s", f, tail(b, 6000))
			}
			if stacks != "" {
				t.Logf("the running conductor's goroutines in ironfleet's code (SIGQUIT):\n%s", stacks)
			}
		}
	})
	return l
}

// conductorStacks makes the running conductor dump its goroutines
// (SIGQUIT: Go prints them and exits) and returns those whose stack runs
// through ironfleet's own packages, for a failed test to show where the
// conductor was: a hang leaves no log line of its own.
func (l *lab) conductorStacks() string {
	if l.cond == nil || len(l.condLogs) == 0 {
		return ""
	}
	f := l.condLogs[len(l.condLogs)-1]
	before, _ := os.ReadFile(f)
	if l.cond.Process.Signal(syscall.SIGQUIT) != nil {
		return ""
	}
	exited := make(chan struct{})
	go func() { _ = l.cond.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = l.cond.Process.Kill()
		<-exited
	}
	l.cond = nil
	after, _ := os.ReadFile(f)
	if len(after) <= len(before) {
		return ""
	}
	var out strings.Builder
	for _, g := range strings.Split(string(after[len(before):]), "\n\n") {
		if strings.HasPrefix(g, "goroutine ") && strings.Contains(g, "ironfleet/ironfleet/") &&
			!strings.Contains(g, "nats-server") {
			out.WriteString(g + "\n\n")
		}
	}
	return out.String()
}

// startConductor runs `ironfleet conductor` as its own process, so that a
// test can kill it.
func (l *lab) startConductor(agentPort int) {
	l.t.Helper()
	l.condN++
	logf := filepath.Join(l.t.TempDir(), fmt.Sprintf("conductor-%d.log", l.condN))
	out, err := os.Create(logf)
	if err != nil {
		l.t.Fatal(err)
	}
	defer out.Close()
	l.condLogs = append(l.condLogs, logf)
	args := fmt.Sprintf("console=ttyS0 quiet ironfleet.ip=10.0.2.15/24 ironfleet.gateway=10.0.2.2 "+
		"ironfleet.modules=%s ironfleet.callback_url=http://127.0.0.1:%d", strings.Join(Modules, ","), agentPort)
	cmd := exec.Command(l.bin, "conductor", "--log-level", "debug", "--host", "lab-conductor",
		"--nats", l.natsURL, "--redis", l.redisURL,
		"--tftp-root", l.tftpRoot, "--tftp-listen", l.tftpAddr, "--ipxe-dir", "/usr/lib/ipxe",
		"--api-url", fmt.Sprintf("http://10.0.2.2:%d", l.agentAPI), "--kernel-args", args,
		"--lock-ttl", "5s", "--claim-timeout", "30s")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.cond = cmd
}

// killConductor kills the conductor process (SIGKILL: no clean shutdown).
func (l *lab) killConductor() {
	if l.cond == nil {
		return
	}
	_ = l.cond.Process.Kill()
	_ = l.cond.Wait()
	l.cond = nil
}

// tftpMarks reads the conductors' logs for the TFTP transfers of this run
// (after since) and marks them.
func (l *lab) tftpMarks(since time.Time) {
	for _, f := range l.condLogs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, `msg="TFTP transfer done"`) {
				continue
			}
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil || at.Before(since) {
				continue
			}
			switch {
			case strings.Contains(line, "file=boot.ipxe"):
				l.mark("PXE request (boot.ipxe served)", at)
			case strings.Contains(line, "file=agent/vmlinuz"):
				l.mark("agent kernel fetched", at)
			case strings.Contains(line, "file=agent/initramfs"):
				l.mark("agent ramdisk fetched", at)
			}
		}
	}
}

// chassisMarks marks what the BMC did to the machine after since: the
// power-ons, the boot device set to disk.
func (l *lab) chassisMarks(since time.Time) {
	evs, err := l.machine.ChassisLog()
	if err != nil {
		l.t.Fatal(err)
	}
	pxeDone := false
	for _, ev := range evs {
		if ev.At.Before(since) {
			continue
		}
		switch {
		case strings.HasPrefix(ev.What, "started once=n"):
			l.mark("power on (PXE)", ev.At)
			pxeDone = true
		case ev.What == "set boot default" && pxeDone:
			l.mark("image written; boot device set to disk over IPMI", ev.At)
		case strings.HasPrefix(ev.What, "started order=c") && pxeDone:
			l.mark("reboot (from disk)", ev.At)
		}
	}
}

// client of the public API.

type node struct {
	UUID                 string         `json:"uuid"`
	ProvisionState       string         `json:"provision_state"`
	TargetProvisionState *string        `json:"target_provision_state"`
	PowerState           *string        `json:"power_state"`
	LastError            *string        `json:"last_error"`
	InstanceInfo         map[string]any `json:"instance_info"`
}

// do calls the public API as an operator's client does.
func (l *lab) do(ctx context.Context, method, path string, body, out any) error {
	return (&apiclient.Client{Base: l.apiURL}).Do(ctx, method, path, body, out)
}

func (l *lab) provision(ctx context.Context, uuid, target string) {
	l.t.Helper()
	if err := l.do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/provision", map[string]any{"target": target}, nil); err != nil {
		l.t.Fatal(err)
	}
}

// waitState polls the node until it is in want; a failed state or a
// last_error on a stable state fails the test.
func (l *lab) waitState(ctx context.Context, uuid, want string) node {
	l.t.Helper()
	var n node
	for {
		if err := l.do(ctx, http.MethodGet, "/v1/nodes/"+uuid, nil, &n); err != nil {
			l.t.Fatal(err)
		}
		if n.ProvisionState == want {
			return n
		}
		if strings.HasSuffix(n.ProvisionState, "failed") {
			l.t.Fatalf("node %s is %s (want %s): %v", uuid, n.ProvisionState, want, deref(n.LastError))
		}
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			l.t.Fatalf("node %s still %s, want %s: %v (last error %q)", uuid, n.ProvisionState, want, err, deref(n.LastError))
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestLab is the hardware lab: one emulated machine behind ipmi_sim,
// enrolled, deployed, undeployed and deployed again through the public API
// only, with a real conductor process, TFTP and the agent ramdisk.
func TestLab(t *testing.T) {
	l := startLab(t)
	// A deadline for the whole run, not a speed bar: three deploys and a
	// clean take about two minutes on an idle 2-core box, and a loaded one
	// (TFTP at a tenth of its speed) has been seen to need more than four.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()

	// Enroll: the ipmi driver with ipmi_sim's address, port, user, password
	// and cipher suite, and the machine's NIC as a port. The disk is blank:
	// no cleaning on the first provide (automated_clean false), turned on
	// before the undeploy, which must clean.
	var n node
	if err := l.do(ctx, http.MethodPost, "/v1/nodes", map[string]any{
		"name": "lab-1", "driver": "ipmi", "driver_info": l.bmc.DriverInfo(), "automated_clean": false,
		// The lab machine boots SeaBIOS; ironfleet's default is UEFI.
		"properties": map[string]any{"capabilities": "boot_mode:bios"},
	}, &n); err != nil {
		t.Fatal(err)
	}
	if err := l.do(ctx, http.MethodPost, "/v1/ports", map[string]any{"node_uuid": n.UUID, "address": l.machine.MAC}, nil); err != nil {
		t.Fatal(err)
	}
	l.provision(ctx, n.UUID, "manage")
	l.waitState(ctx, n.UUID, "manageable")
	l.provision(ctx, n.UUID, "provide")
	l.waitState(ctx, n.UUID, "available")
	if err := l.do(ctx, http.MethodPatch, "/v1/nodes/"+n.UUID, []map[string]any{
		{"op": "add", "path": "/instance_info/image_source", "value": l.imageURL},
		{"op": "add", "path": "/instance_info/image_checksum", "value": l.imageSum},
		{"op": "replace", "path": "/automated_clean", "value": true},
	}, nil); err != nil {
		t.Fatal(err)
	}

	t.Run("deploy with a lock pest", func(t *testing.T) {
		got, locked := l.pest(ctx, n.UUID, func() { l.deploy(ctx, t, n.UUID, "run 1: deploy (a console-like loop takes the lock meanwhile)", nil) })
		t.Logf("lock pest: took the lock %d times, refused %d times; %d handoffs", got, locked, l.handoffs.Load())
		if got == 0 {
			t.Errorf("the pest never got the lock: it did not compete")
		}
		if l.handoffs.Load() == 0 {
			t.Errorf("no lock handoff event: the deploy did not continue through the handoff")
		}
	})

	t.Run("undeploy cleans", func(t *testing.T) {
		var tl Timeline
		l.setTimeline(&tl)
		start := time.Now()
		l.provision(ctx, n.UUID, "deleted")
		got := l.waitState(ctx, n.UUID, "available")
		l.chassisMarks(start)
		l.tftpMarks(start)
		tl.Mark("available", time.Now())
		if got.PowerState == nil || *got.PowerState != "power off" {
			t.Errorf("power state after cleaning = %v, want power off", deref(got.PowerState))
		}
		if on, _ := l.machine.Running(ctx); on {
			t.Errorf("the VM still runs after cleaning")
		}
		checkErased(t, l.machine.Disk)
		l.report(ctx, t, "run 1: undeploy and clean", &tl)
	})

	t.Run("conductor killed in wait call-back", func(t *testing.T) {
		l.deploy(ctx, t, n.UUID, "run 2: deploy, conductor killed in wait call-back and restarted", func(tl *Timeline, start time.Time) {
			l.waitState(ctx, n.UUID, "wait call-back")
			// Kill once the machine has its ramdisk (the TFTP server dies
			// with the conductor), before the agent calls back.
			for {
				l.tftpMarks(start)
				if _, ok := tl.Get("agent ramdisk fetched"); ok {
					break
				}
				if wait.Sleep(ctx, 100*time.Millisecond) != nil {
					t.Fatal("the machine never fetched the agent ramdisk")
				}
			}
			var cur node
			if err := l.do(ctx, http.MethodGet, "/v1/nodes/"+n.UUID, nil, &cur); err != nil {
				t.Fatal(err)
			}
			if cur.ProvisionState != "wait call-back" {
				t.Fatalf("node is %s when the conductor is to be killed, want wait call-back", cur.ProvisionState)
			}
			l.killConductor()
			tl.Mark("conductor killed", time.Now())
			l.startConductor(l.machineAgentPort())
			tl.Mark("conductor restarted", time.Now())
		})
	})
}

func (l *lab) setTimeline(tl *Timeline) {
	l.mu.Lock()
	l.tl = tl
	l.mu.Unlock()
}

func (l *lab) machineAgentPort() int {
	b, err := os.ReadFile(filepath.Join(l.machine.Dir, "machine.env"))
	if err != nil {
		l.t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "hostfwd=tcp:127.0.0.1:")
	var p int
	if _, err := fmt.Sscanf(s[i+len("hostfwd=tcp:127.0.0.1:"):], "%d", &p); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// deploy takes the node from available to active, with during running
// while the deploy is under way, and checks the instance booted.
func (l *lab) deploy(ctx context.Context, t *testing.T, uuid, title string, during func(tl *Timeline, start time.Time)) {
	t.Helper()
	l.deployWith(ctx, t, uuid, title, map[string]any{"target": "active"}, during)
}

// deployWith is deploy with the body of the provision request (target
// active, a configdrive …); it returns the instance's report.
func (l *lab) deployWith(ctx context.Context, t *testing.T, uuid, title string, body map[string]any, during func(tl *Timeline, start time.Time)) string {
	t.Helper()
	return l.deployRun(ctx, t, uuid, title, body, during, true)
}

// deployRun is deployWith; without instance it returns once the node is
// active, without waiting for the instance to boot (a run that only
// times the deploy).
func (l *lab) deployRun(ctx context.Context, t *testing.T, uuid, title string, body map[string]any, during func(tl *Timeline, start time.Time), instance bool) string {
	t.Helper()
	var tl Timeline
	l.setTimeline(&tl)
	start := time.Now()
	before := len(l.rep.seen())
	serialFrom := l.machine.SerialSize()
	if err := l.do(ctx, http.MethodPut, "/v1/nodes/"+uuid+"/states/provision", body, nil); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during(&tl, start)
	}
	got := l.waitState(ctx, uuid, "active")
	tl.Mark("active (seen through the API)", time.Now())
	if !instance {
		l.chassisMarks(start)
		l.tftpMarks(start)
		l.report(ctx, t, title, &tl)
		return ""
	}
	// The instance prints its marker and reports.
	if err := l.machine.WaitSerial(ctx, InstanceMarker, serialFrom, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	at, report, err := l.rep.waitAfter(ctx, before)
	if err != nil {
		t.Fatal(err)
	}
	tl.Mark("instance up (marker on the serial console, report to the host)", at)
	l.chassisMarks(start)
	l.tftpMarks(start)
	if got.PowerState == nil || *got.PowerState != "power on" {
		t.Errorf("power state when active = %v, want power on", deref(got.PowerState))
	}
	if dev := l.machine.BootDevice(); dev != "default" {
		t.Errorf("boot device = %q, want default (disk)", dev)
	}
	l.report(ctx, t, title, &tl)
	return report
}

// report prints a run's timeline and keeps it as an artifact
// ($IRONFLEET_E2E_ARTIFACTS or the cache dir).
func (l *lab) report(ctx context.Context, t *testing.T, title string, tl *Timeline) {
	out := tl.Render(title+" — seconds since power on", "power on (PXE)")
	t.Log("\n" + out)
	dir := os.Getenv("IRONFLEET_E2E_ARTIFACTS")
	if dir == "" {
		dir = cacheDir(ctx, t)
	}
	f, err := os.OpenFile(filepath.Join(dir, "timeline.txt"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("timeline artifact: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s", time.Now().UTC().Format(time.RFC3339), out)
}

// pest runs fn while a loop takes the node's lock in standard mode, as a
// console request would, holding it briefly each time.
func (l *lab) pest(ctx context.Context, uuid string, fn func()) (got, locked int) {
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pctx.Err() == nil {
			lk, err := l.infra.Locks.WithHolder("lab-pest").Acquire(pctx, uuid, &lock.Options{Purpose: "console"})
			switch {
			case err == nil:
				got++
				_ = wait.Sleep(pctx, 300*time.Millisecond)
				_ = lk.Release(context.WithoutCancel(pctx))
			case errors.Is(err, lock.ErrLocked):
				locked++
			}
			_ = wait.Sleep(pctx, 200*time.Millisecond)
		}
	}()
	fn()
	stop()
	<-done
	return got, locked
}

// checkErased reads the disk's first and last MiB: cleaning zeroes them.
func checkErased(t *testing.T, disk string) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for _, off := range []int64{0, st.Size() - 1<<20} {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, make([]byte, len(buf))) {
			t.Errorf("the disk's MiB at offset %d is not zeroed after cleaning", off)
		}
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// serve runs fn until t ends, then cancels it and waits.
func serve(t *testing.T, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = fn(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// serveHTTP serves h on l until t ends.
func serveHTTP(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	serve(t, func(ctx context.Context) error { return graceful.Serve(ctx, srv, l, time.Second) })
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := new(net.ListenConfig).ListenPacket(t.Context(), "udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
