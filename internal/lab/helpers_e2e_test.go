//go:build e2e

package lab

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ironfleet/ironfleet/internal/redistest"
)

// cacheDir is where downloads (the Debian kernel) are kept across runs:
// $IRONFLEET_E2E_CACHE, else .e2e/ at the repository root (gitignored).
func cacheDir(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("IRONFLEET_E2E_CACHE"); d != "" {
		return d
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		tb.Fatalf("go env GOMOD: %v", err)
	}
	dir := filepath.Join(filepath.Dir(string(out[:len(out)-1])), ".e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// requireTools skips (outside CI) or fails (CI=true) when a lab binary is missing.
func requireTools(tb testing.TB, bins ...string) {
	tb.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			redistest.Unavailable(tb, err)
		}
	}
}

type artifacts struct {
	kernel  Kernel
	ramdisk string // the agent ramdisk
	err     error
}

var (
	artOnce sync.Once
	art     artifacts
)

// agentRamdisk returns Debian's kernel and the agent ramdisk, built once per
// test binary into a directory removed at its end (TestMain).
func agentRamdisk(tb testing.TB) (Kernel, string) {
	tb.Helper()
	requireTools(tb, "apt-get", "dpkg-deb", "go")
	artOnce.Do(func() {
		ctx := context.Background()
		rel, err := KernelRelease(ctx)
		if err != nil {
			art.err = err
			return
		}
		k, err := FetchKernel(ctx, cacheDir(ctx, tb), rel)
		if err != nil {
			art.err = err
			return
		}
		mods, err := k.ResolveModules(Modules)
		if err != nil {
			art.err = err
			return
		}
		bin := filepath.Join(buildDir, "ironfleet-agent")
		if err := BuildStatic(ctx, "github.com/ironfleet/ironfleet/cmd/ironfleet-agent", bin); err != nil {
			art.err = err
			return
		}
		rd := filepath.Join(buildDir, "agent.initrd")
		if err := (Ramdisk{Init: bin, Kernel: k, Modules: mods}).Build(rd); err != nil {
			art.err = err
			return
		}
		art.kernel, art.ramdisk = k, rd
	})
	if art.err != nil {
		tb.Fatal(art.err)
	}
	return art.kernel, art.ramdisk
}

var buildDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "ironfleet-lab-")
	if err != nil {
		panic(err)
	}
	buildDir = d
	rep, stop, err := startReports()
	if err != nil {
		panic(err)
	}
	labReports = rep
	code := m.Run()
	stop()
	_ = os.RemoveAll(d)
	os.Exit(code)
}

// freeTCPPort returns a TCP port of 127.0.0.1 free a moment ago.
func freeTCPPort(tb testing.TB) int {
	tb.Helper()
	l, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newMachine creates a machine under t's temp dir, killed when t ends.
func newMachine(t *testing.T, cfg MachineConfig) *Machine {
	t.Helper()
	requireTools(t, "qemu-system-x86_64")
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "vm")
	}
	cfg.Owner = os.Getpid()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(m.Serial); err == nil {
				t.Logf("serial console of %s:\n%s", m.MAC, tail(b, 4000))
			}
		}
	})
	return m
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
