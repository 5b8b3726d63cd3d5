package pxe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironfleet/ironfleet/conductor/pxe"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// tftpServer is a running pxe.Server on a loopback port.
type tftpServer struct {
	root string
	port int
	reg  *prometheus.Registry
	stop func() // stops Serve and waits for the transfers under way; idempotent
}

// serve starts a Server of root (a fresh temp dir when "") and stops it,
// waiting for Serve to return, when t ends.
func serve(t *testing.T, root string, cfg pxe.ServerConfig) *tftpServer {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	cfg.Root, cfg.Registerer = root, reg
	if cfg.Timeout == 0 {
		cfg.Timeout = 100 * time.Millisecond
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	srv, err := pxe.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = srv.Close()
	})
	t.Cleanup(stop)
	return &tftpServer{root: root, port: conn.LocalAddr().(*net.UDPAddr).Port, reg: reg, stop: stop}
}

func (s *tftpServer) url(name string) string {
	return fmt.Sprintf("tftp://127.0.0.1:%d/%s", s.port, name)
}

// transfers reads the transfer counter for outcome.
func (s *tftpServer) transfers(t *testing.T, outcome string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ironfleet_tftp_transfers_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func need(t *testing.T, bin string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err != nil {
		redistest.Unavailable(t, fmt.Errorf("%s not installed (Debian: tftp-hpa, curl): %w", bin, err))
	}
}

// curlGet fetches name with curl's TFTP client; args go before the URL.
func (s *tftpServer) curlGet(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	need(t, "curl")
	out := filepath.Join(t.TempDir(), "got")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmdArgs := append([]string{"-sS", "--path-as-is", "-o", out}, args...)
	cmd := exec.CommandContext(ctx, "curl", append(cmdArgs, s.url(name))...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("curl %s: %w: %s", name, err, msg)
	}
	return os.ReadFile(out)
}

// hpaGet fetches name with Debian's tftp-hpa client.
func (s *tftpServer) hpaGet(t *testing.T, name string) ([]byte, error) {
	t.Helper()
	need(t, "tftp")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tftp", "-m", "binary", "127.0.0.1", fmt.Sprint(s.port), "-c", "get", name, "got")
	cmd.Dir = dir
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("tftp get %s: %w: %s", name, err, msg)
	}
	// tftp-hpa exits 0 after some errors; it always says so on output.
	if bytes.Contains(msg, []byte("Error")) || bytes.Contains(msg, []byte("Transfer timed out")) {
		return nil, fmt.Errorf("tftp get %s: %s", name, msg)
	}
	return os.ReadFile(filepath.Join(dir, "got"))
}

func randomFile(t *testing.T, name string, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestServesFilesToRealClients(t *testing.T) {
	s := serve(t, "", pxe.ServerConfig{})
	want := randomFile(t, filepath.Join(s.root, "agent", "ramdisk"), 300*1024+17)
	tiny := randomFile(t, filepath.Join(s.root, "tiny"), 1)
	empty := randomFile(t, filepath.Join(s.root, "empty"), 0)
	exact := randomFile(t, filepath.Join(s.root, "exact"), 1468*3)

	clients := []struct {
		name string
		get  func(t *testing.T, name string) ([]byte, error)
	}{
		{"curl, 512-byte blocks", func(t *testing.T, n string) ([]byte, error) { return s.curlGet(t, n) }},
		{"curl, 1468-byte blocks (iPXE asks 1432)", func(t *testing.T, n string) ([]byte, error) {
			return s.curlGet(t, n, "--tftp-blksize", "1468")
		}},
		{"curl, blocks larger than offered", func(t *testing.T, n string) ([]byte, error) {
			return s.curlGet(t, n, "--tftp-blksize", "8192")
		}},
		{"tftp-hpa", s.hpaGet},
	}
	files := []struct {
		name string
		want []byte
	}{{"agent/ramdisk", want}, {"tiny", tiny}, {"empty", empty}, {"exact", exact}, {`agent\ramdisk`, want}}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range files {
				if strings.Contains(f.name, `\`) && !strings.HasPrefix(c.name, "tftp-hpa") {
					continue // curl would escape the backslash
				}
				got, err := c.get(t, f.name)
				if err != nil {
					t.Fatalf("get %s: %v", f.name, err)
				}
				if !bytes.Equal(got, f.want) {
					t.Errorf("get %s: got %d bytes, want %d identical bytes", f.name, len(got), len(f.want))
				}
			}
		})
	}
	// A client is done when it has the last block; the server counts the
	// transfer when the client's last ACK reaches it. Stopping the server
	// waits for that, so the count is final.
	s.stop()
	if n := s.transfers(t, "ok"); n != float64(len(clients)*len(files)-3) {
		t.Errorf("ok transfers counted %v, want %d", n, len(clients)*len(files)-3)
	}
}

func TestRefusesWhatIsNotUnderTheRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	randomFile(t, filepath.Join(outside, "secret"), 64)
	inside := randomFile(t, filepath.Join(root, "agent", "vmlinuz"), 4096)
	for link, target := range map[string]string{
		"escape":        filepath.Join(outside, "secret"),        // absolute symlink out
		"rel-escape":    "../outside/secret",                     // relative symlink out
		"dir-escape":    outside,                                 // a directory symlink out
		"agent/kernel":  "vmlinuz",                               // inside: fine
		"agent/abs-in":  filepath.Join(root, "agent", "vmlinuz"), // absolute: refused by os.Root even inside
		"loop":          "loop",
		"agent/dangles": "nothing-here",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	s := serve(t, root, pxe.ServerConfig{})

	refused := []string{
		"../outside/secret",
		"agent/../../outside/secret",
		"agent/../agent/vmlinuz", // ".." is refused even when it stays inside
		"/etc/passwd",
		filepath.Join(outside, "secret"),
		"escape",
		"rel-escape",
		"dir-escape/secret",
		"loop",
		"agent/dangles",
		"agent/abs-in",
		"agent",   // a directory
		"missing", // nothing
	}
	for _, name := range refused {
		t.Run("refuses "+name, func(t *testing.T) {
			if got, err := s.hpaGet(t, name); err == nil {
				t.Errorf("tftp-hpa got %q (%d bytes), want a refusal", name, len(got))
			}
			if !strings.HasPrefix(name, "/") { // curl cannot ask for absolute names
				if got, err := s.curlGet(t, name); err == nil {
					t.Errorf("curl got %q (%d bytes), want a refusal", name, len(got))
				}
			}
		})
	}
	for _, name := range []string{"agent/kernel", "./agent/vmlinuz", "agent//vmlinuz", "agent/./vmlinuz"} {
		t.Run("serves "+name, func(t *testing.T) {
			got, err := s.hpaGet(t, name)
			if err != nil || !bytes.Equal(got, inside) {
				t.Errorf("get %s = %d bytes, %v; want the %d bytes of agent/vmlinuz", name, len(got), err, len(inside))
			}
		})
	}
	s.stop() // the count is final once the server has seen every last ACK
	if n := s.transfers(t, "ok"); n != 4 {
		t.Errorf("ok transfers %v, want 4", n)
	}
}

func TestRefusesWrites(t *testing.T) {
	need(t, "tftp")
	s := serve(t, "", pxe.ServerConfig{})
	src := filepath.Join(t.TempDir(), "upload")
	randomFile(t, src, 100)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	msg, _ := exec.CommandContext(ctx, "tftp", "-m", "binary", "127.0.0.1", fmt.Sprint(s.port), "-c", "put", src, "upload").CombinedOutput()
	if !bytes.Contains(msg, []byte("Error")) {
		t.Errorf("tftp put said %q, want an error", msg)
	}
	if _, err := os.Stat(filepath.Join(s.root, "upload")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload landed in the root (stat: %v)", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientAbortLeavesServerHealthy(t *testing.T) {
	need(t, "curl")
	s := serve(t, "", pxe.ServerConfig{Timeout: 50 * time.Millisecond, Retries: 2})
	big := filepath.Join(s.root, "big.img")
	// Sparse: 256 MiB that cost no disk.
	if f, err := os.Create(big); err != nil {
		t.Fatal(err)
	} else {
		if err := f.Truncate(256 << 20); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	small := randomFile(t, filepath.Join(s.root, "boot.ipxe"), 200)

	t.Run("client killed mid-transfer", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "partial")
		cmd := exec.Command("curl", "-sS", "--limit-rate", "200K", "-o", out, s.url("big.img"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := false
		defer func() {
			if !waited {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}()
		waitFor(t, "the transfer to start", func() bool {
			st, err := os.Stat(out)
			return err == nil && st.Size() > 0
		})
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		waited = true

		got, err := s.curlGet(t, "boot.ipxe")
		if err != nil || !bytes.Equal(got, small) {
			t.Fatalf("get after the abort = %d bytes, %v; want %d bytes", len(got), err, len(small))
		}
		waitFor(t, "the server to give up on the dead client", func() bool { return s.transfers(t, "failed") >= 1 })
	})

	t.Run("client gives up", func(t *testing.T) {
		// curl stops acknowledging when --max-time runs out, mid-file.
		_, err := s.curlGet(t, "big.img", "--limit-rate", "200K", "--max-time", "0.3")
		if err == nil {
			t.Fatal("curl fetched 256 MiB at 200 KiB/s within 0.3s")
		}
		got, err := s.hpaGet(t, "boot.ipxe")
		if err != nil || !bytes.Equal(got, small) {
			t.Fatalf("get after the client gave up = %d bytes, %v; want %d bytes", len(got), err, len(small))
		}
		waitFor(t, "the server to give up on the silent client", func() bool { return s.transfers(t, "failed") >= 2 })
	})
}

func TestServeStops(t *testing.T) {
	srv, err := pxe.NewServer(pxe.ServerConfig{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, "127.0.0.1:0") }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe after cancel = %v, want nil", err)
	}
	if err := srv.ListenAndServe(t.Context(), "256.0.0.1:69"); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

func TestNewServerRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]pxe.ServerConfig{
		"no root":          {},
		"missing root":     {Root: filepath.Join(t.TempDir(), "nope")},
		"block size small": {Root: t.TempDir(), BlockSize: 100},
	} {
		if srv, err := pxe.NewServer(cfg); err == nil {
			_ = srv.Close()
			t.Errorf("%s: NewServer succeeded", name)
		}
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"boot.ipxe", "boot.ipxe", true},
		{"nodes/aa-bb.ipxe", "nodes/aa-bb.ipxe", true},
		{"./a//b/", "a/b", true},
		{`pxelinux.cfg\default`, "pxelinux.cfg/default", true},
		{"", "", false},
		{".", "", false},
		{"/etc/passwd", "", false},
		{`\etc\passwd`, "", false},
		{`C:\boot`, "", false},
		{"..", "", false},
		{"a/../b", "", false},
		{`a\..\..\b`, "", false},
		{"a\x00b", "", false},
		{"a\nb", "", false},
	}
	for _, tt := range tests {
		got, err := pxe.CleanPath(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if !tt.ok && (err == nil || !errors.Is(err, pxe.ErrBadPath)) {
			t.Errorf("CleanPath(%q) = %q, %v; want ErrBadPath", tt.in, got, err)
		}
	}
}

func TestSinglePort(t *testing.T) {
	s := serve(t, "", pxe.ServerConfig{SinglePort: true})
	want := randomFile(t, filepath.Join(s.root, "agent", "vmlinuz"), 100*1024)
	got, err := s.curlGet(t, "agent/vmlinuz", "--tftp-blksize", "1432")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("single-port get = %d bytes, %v; want %d identical bytes", len(got), err, len(want))
	}
	if _, err := s.hpaGet(t, "../etc/passwd"); err == nil {
		t.Error("single-port server served an escape")
	}
}

// BenchmarkTransfer fetches an 8 MiB file (the size of a small agent
// ramdisk) with pin/tftp's Go client, at TFTP's default and at iPXE's block
// size.
func BenchmarkTransfer(b *testing.B) {
	root := b.TempDir()
	data := make([]byte, 8<<20)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "ramdisk"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	srv, err := pxe.NewServer(pxe.ServerConfig{Root: root})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()
	for _, blk := range []int{512, 1432} {
		b.Run(fmt.Sprintf("blksize=%d", blk), func(b *testing.B) {
			c, err := tftp.NewClient(conn.LocalAddr().String())
			if err != nil {
				b.Fatal(err)
			}
			c.SetBlockSize(blk)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				wt, err := c.Receive("ramdisk", "octet")
				if err != nil {
					b.Fatal(err)
				}
				if n, err := wt.WriteTo(io.Discard); err != nil || n != int64(len(data)) {
					b.Fatalf("got %d bytes, %v", n, err)
				}
			}
		})
	}
}
