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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironfleet/ironfleet/internal/graceful"
	"github.com/ironfleet/ironfleet/internal/wait"
)

// reports is the host endpoint instances POST to when they are up. One
// serves the whole test binary (TestMain owns it), since the instance image,
// built once, has its URL baked in.
type reports struct {
	port int
	mu   sync.Mutex
	at   []time.Time
	body []string
}

var labReports *reports

// seen returns when each report arrived.
func (r *reports) seen() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// waitAfter waits for a report beyond the first n and returns its time and body.
func (r *reports) waitAfter(ctx context.Context, n int) (time.Time, string, error) {
	for {
		r.mu.Lock()
		if len(r.at) > n {
			at, body := r.at[n], r.body[n]
			r.mu.Unlock()
			return at, body, nil
		}
		r.mu.Unlock()
		if err := wait.Sleep(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, "", fmt.Errorf("no instance report: %w", err)
		}
	}
}

// startReports serves reports until the returned stop is called.
func startReports() (*reports, func(), error) {
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	r := &reports{port: l.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(_ http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1024))
		r.mu.Lock()
		r.at = append(r.at, time.Now())
		r.body = append(r.body, string(b))
		r.mu.Unlock()
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = graceful.Serve(ctx, srv, l, time.Second) }()
	return r, func() { cancel(); <-done }, nil
}

var (
	imageOnce sync.Once
	imagePath string
	imageSum  string
	imageErr  error
)

// instanceImage builds the instance image once per test binary; it reports
// to labReports.
func instanceImage(t *testing.T) (path, sum string) {
	t.Helper()
	requireTools(t, "mkfs.vfat", "syslinux", "mcopy")
	k, _ := agentRamdisk(t)
	imageOnce.Do(func() {
		ctx := context.Background()
		// isofs: the instance mounts its config drive.
		instMods := append(slices.Clone(Modules), "isofs")
		mods, err := k.ResolveModules(instMods)
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
				strings.Join(instMods, ","), labReports.port),
		}.Build(ctx, imagePath)
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imagePath, imageSum
}

// TestInstanceImageBoots writes the instance image onto a machine's blank
// disk by hand and powers it on, under each firmware: SeaBIOS boots
// SYSLINUX through the MBR, OVMF boots SYSLINUX's EFI build from the EFI
// system partition; the instance prints its marker on the serial console
// and reports to the host.
func TestInstanceImageBoots(t *testing.T) {
	img, _ := instanceImage(t)
	for _, tt := range []struct {
		firmware, mac string
	}{
		{FirmwareBIOS, "52:54:00:1a:b0:03"},
		{FirmwareUEFI, "52:54:00:1a:b0:04"},
	} {
		t.Run(tt.firmware, func(t *testing.T) {
			before := len(labReports.seen())
			m := newMachine(t, MachineConfig{MAC: tt.mac, Firmware: tt.firmware})
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
			at, got, err := labReports.waitAfter(ctx, before)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: instance reported %.1fs after power on: %q", tt.firmware, at.Sub(start).Seconds(), got)
			if !strings.HasPrefix(got, InstanceMarker) {
				t.Errorf("report = %q, want it to start with %q", got, InstanceMarker)
			}
			if !m.SerialContains(InstanceMarker, 0) {
				t.Errorf("serial console lacks %q", InstanceMarker)
			}
		})
	}
}
