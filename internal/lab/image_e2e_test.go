//go:build e2e

package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// reports is the host endpoint instances POST to when they are up.
type reports struct {
	port int
	ch   chan string
	mu   sync.Mutex
	at   []time.Time
}

// seen returns when each report arrived.
func (r *reports) seen() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

func reportServer(t *testing.T) *reports {
	t.Helper()
	r := &reports{ch: make(chan string, 8)}
	l, err := new(net.ListenConfig).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.port = l.Addr().(*net.TCPAddr).Port
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1024))
		r.mu.Lock()
		r.at = append(r.at, time.Now())
		r.mu.Unlock()
		select {
		case r.ch <- string(b):
		default:
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return r
}

var (
	imageOnce sync.Once
	imagePath string
	imageSum  string
	imageErr  error
)

// instanceImage builds the instance image once per test binary; it reports
// to host port reportPort (the first caller's).
func instanceImage(t *testing.T, reportPort int) (path, sum string) {
	t.Helper()
	requireTools(t, "mkfs.vfat", "syslinux", "mcopy")
	k, _ := agentRamdisk(t)
	imageOnce.Do(func() {
		ctx := context.Background()
		mods, err := k.ResolveModules(Modules)
		if err != nil {
			imageErr = err
			return
		}
		init := filepath.Join(buildDir, "labinit")
		if imageErr = BuildStatic(ctx, "github.com/ironfleet/ironfleet/internal/lab/labinit", init); imageErr != nil {
			return
		}
		imagePath = filepath.Join(buildDir, "instance.img")
		imageSum, imageErr = Image{
			Kernel: k, Modules: mods, Init: init,
			Append: fmt.Sprintf("console=ttyS0 quiet ironfleet.ip=10.0.2.15/24 ironfleet.gateway=10.0.2.2 ironfleet.modules=%s lab.report=http://10.0.2.2:%d/booted",
				strings.Join(Modules, ","), reportPort),
		}.Build(ctx, imagePath)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imagePath, imageSum
}

// TestInstanceImageBoots writes the instance image onto a machine's blank
// disk by hand and powers it on: SeaBIOS boots SYSLINUX from the disk, the
// instance prints its marker on the serial console and reports to the host.
func TestInstanceImageBoots(t *testing.T) {
	rep := reportServer(t)
	img, _ := instanceImage(t, rep.port)
	m := newMachine(t, MachineConfig{MAC: "52:54:00:1a:b0:03"})
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.Disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := m.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-rep.ch:
		t.Logf("instance reported %.1fs after power on: %q", time.Since(start).Seconds(), got)
		if !strings.HasPrefix(got, InstanceMarker) {
			t.Errorf("report = %q, want it to start with %q", got, InstanceMarker)
		}
	case <-ctx.Done():
		t.Fatal("the instance did not report within 2 minutes")
	}
	if !m.SerialContains(InstanceMarker) {
		t.Errorf("serial console lacks %q", InstanceMarker)
	}
}
