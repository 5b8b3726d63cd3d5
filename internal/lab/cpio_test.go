package lab

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
)

// cpioEntry is one parsed newc entry.
type cpioEntry struct {
	name       string
	mode       uint64
	rmaj, rmin uint64
	data       string
}

// parseNewc reads back a newc archive, checking magic and 4-byte alignment.
func parseNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	field := func(i int) uint64 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d at %d: %v", i, off, err)
		}
		return v
	}
	for {
		if off%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", off)
		}
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("bad magic %q at %d", b[off:off+6], off)
		}
		mode, size, rmaj, rmin, nsize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(nsize)-1])
		if b[off+110+int(nsize)-1] != 0 {
			t.Fatalf("name of %q not NUL-terminated", name)
		}
		dataOff := (off + 110 + int(nsize) + 3) &^ 3
		data := string(b[dataOff : dataOff+int(size)])
		off = (dataOff + int(size) + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, cpioEntry{name: name, mode: mode, rmaj: rmaj, rmin: rmin, data: data})
	}
}

func TestCPIOWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewCPIOWriter(&buf)
	steps := []error{
		w.Mkdir("dev", 0o755),
		w.CharDev("dev/console", 0o600, 5, 1),
		w.File("init", 0o755, []byte("#!/bin/sh\n")),
		w.File("a", 0o644, []byte("12345")), // odd sizes exercise padding
		w.Symlink("sbin", "bin"),
		w.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got := parseNewc(t, buf.Bytes())
	want := []cpioEntry{
		{name: "dev", mode: 0o040755},
		{name: "dev/console", mode: 0o020600, rmaj: 5, rmin: 1},
		{name: "init", mode: 0o100755, data: "#!/bin/sh\n"},
		{name: "a", mode: 0o100644, data: "12345"},
		{name: "sbin", mode: 0o120777, data: "bin"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCPIOWriterRefusesBadNames(t *testing.T) {
	for _, tc := range []struct{ name, entry string }{
		{"empty", ""},
		{"absolute", "/init"},
		{"parent", "../etc/passwd"},
		{"unclean", "a//b"},
		{"dot", "."},
		{"twice", "init"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewCPIOWriter(new(bytes.Buffer))
			if err := w.File("init", 0o755, nil); err != nil {
				t.Fatal(err)
			}
			if err := w.File(tc.entry, 0o644, nil); !errors.Is(err, ErrCPIOName) {
				t.Errorf("File(%q) = %v, want %v", tc.entry, err, ErrCPIOName)
			}
		})
	}
	w := NewCPIOWriter(new(bytes.Buffer))
	_ = w.Close()
	if err := w.File("late", 0o644, nil); err == nil {
		t.Error("File after Close succeeded, want an error")
	}
}

func TestModulesDep(t *testing.T) {
	s := ModuleSet{
		Paths: []string{"k/failover.ko", "k/net_failover.ko", "k/virtio_net.ko"},
		deps: map[string][]string{
			"k/net_failover.ko": {"k/failover.ko"},
			"k/virtio_net.ko":   {"k/net_failover.ko"},
		},
	}
	want := "k/failover.ko:\nk/net_failover.ko: k/failover.ko\nk/virtio_net.ko: k/net_failover.ko k/failover.ko\n"
	if got := string(s.ModulesDep()); got != want {
		t.Errorf("ModulesDep =\n%s\nwant\n%s", got, want)
	}
}

func TestFetchKernelRefusesBadRelease(t *testing.T) {
	for _, rel := range []string{"", "../../etc", "6.1.0-56-arm64", "6.1.0 -56-amd64"} {
		if _, err := FetchKernel(t.Context(), t.TempDir(), rel); !errors.Is(err, ErrNoKernel) {
			t.Errorf("FetchKernel(%q) = %v, want %v", rel, err, ErrNoKernel)
		}
	}
}

func TestNewMachineRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MachineConfig
	}{
		{"no dir", MachineConfig{MAC: "52:54:00:00:00:01"}},
		{"bad MAC", MachineConfig{Dir: t.TempDir(), MAC: "52:54:00"}},
		{"quote in append", MachineConfig{Dir: t.TempDir(), MAC: "52:54:00:00:00:01", QEMU: "sh", Append: "a'b"}},
		{"unknown firmware", MachineConfig{Dir: t.TempDir(), MAC: "52:54:00:00:00:01", QEMU: "sh", Firmware: "coreboot"}},
		{"UEFI without OVMF", MachineConfig{Dir: t.TempDir(), MAC: "52:54:00:00:00:01", QEMU: "sh", Firmware: FirmwareUEFI,
			OVMFCode: "/nonexistent/OVMF_CODE.fd"}},
		{"disk serial with a space", MachineConfig{Dir: t.TempDir(), MAC: "52:54:00:00:00:01", QEMU: "sh",
			ExtraDisks: []DiskConfig{{Serial: "a b"}}}},
		{"disk serial too long", MachineConfig{Dir: t.TempDir(), MAC: "52:54:00:00:00:01", QEMU: "sh",
			ExtraDisks: []DiskConfig{{Serial: "0123456789012345678901"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewMachine(tc.cfg); err == nil {
				t.Error("NewMachine succeeded, want an error")
			}
		})
	}
}
