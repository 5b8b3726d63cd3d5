// Command labinit is the /init of the hardware lab's instance image: the
// "operating system" a deploy writes to the machine's disk. It brings the
// machine up as the agent does (mounts, virtio modules, static address from
// ironfleet.* kernel arguments), reads the config drive as cloud-init does
// (the ISO 9660 volume labelled config-2, mounted read-only:
// openstack/latest/user_data and meta_data.json), prints Marker on the
// console, reports to lab.report=<url> on the kernel command line with an
// HTTP POST (Marker, a space, then a Report as JSON), and then idles (init
// must never exit).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ironfleet/ironfleet/agent"
)

// Marker is printed on the serial console once the instance is up.
const Marker = "IRONFLEET-LAB-INSTANCE-UP"

// Report is what the instance tells the host, after Marker.
type Report struct {
	Host string `json:"host"`
	// ConfigDrive is the device the config-2 volume was found on
	// ("/dev/vdb2"), empty when there is none; ConfigDriveError says why
	// it could not be read.
	ConfigDrive      string `json:"config_drive,omitempty"`
	ConfigDriveError string `json:"config_drive_error,omitempty"`
	// UserData is openstack/latest/user_data; UUID is meta_data.json's uuid.
	UserData string `json:"user_data,omitempty"`
	UUID     string `json:"uuid,omitempty"`
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	if err := run(log); err != nil {
		log.Error("labinit", "err", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func run(log *slog.Logger) error {
	ctx := context.Background()
	// BringUp mounts /proc too; the command line needs it first.
	if err := agent.BringUp(ctx, log, agent.BootParams{}, agent.BringUpConfig{}); err != nil {
		return err
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	p, err := agent.ParseCmdline(string(b))
	if err != nil {
		return err
	}
	if err := agent.BringUp(ctx, log, p, agent.BringUpConfig{}); err != nil {
		return err
	}
	var report string
	for w := range strings.FieldsSeq(string(b)) {
		if v, ok := strings.CutPrefix(w, "lab.report="); ok {
			report = v
		}
	}
	rep := Report{}
	rep.Host, _ = os.Hostname()
	if err := readConfigDrive(&rep); err != nil {
		rep.ConfigDriveError = err.Error()
		log.Warn("config drive", "err", err)
	} else {
		log.Info("config drive", "device", rep.ConfigDrive, "uuid", rep.UUID)
	}
	fmt.Println(Marker)
	if report == "" {
		return nil
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	for attempt := 1; attempt <= 10; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, report, bytes.NewReader([]byte(Marker+" "+string(body))))
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}
		cancel()
		if err == nil {
			log.Info("reported", "url", report)
			return nil
		}
		log.Warn("report", "url", report, "err", err)
		time.Sleep(time.Second)
	}
	return nil
}

// configDriveLabel is the ISO 9660 volume label of a config drive.
const configDriveLabel = "config-2"

// readConfigDrive finds the block device holding an ISO 9660 volume
// labelled config-2 (its primary volume descriptor is at byte 32768:
// type 1, "CD001", the volume identifier at offset 40, 32 bytes padded
// with spaces), mounts it read-only and reads the OpenStack layout.
func readConfigDrive(rep *Report) error {
	names, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return err
	}
	for _, e := range names {
		dev := "/dev/" + e.Name()
		if label, err := isoLabel(dev); err == nil && strings.EqualFold(label, configDriveLabel) {
			rep.ConfigDrive = dev
			break
		}
	}
	if rep.ConfigDrive == "" {
		return errors.New("no volume labelled " + configDriveLabel)
	}
	const dir = "/mnt/config"
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := syscall.Mount(rep.ConfigDrive, dir, "iso9660", syscall.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount %s: %w", rep.ConfigDrive, err)
	}
	ud, err := os.ReadFile(filepath.Join(dir, "openstack/latest/user_data"))
	if err != nil {
		return err
	}
	rep.UserData = string(ud)
	md, err := os.ReadFile(filepath.Join(dir, "openstack/latest/meta_data.json"))
	if err != nil {
		return err
	}
	var meta struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(md, &meta); err != nil {
		return fmt.Errorf("meta_data.json: %w", err)
	}
	rep.UUID = meta.UUID
	return nil
}

// isoLabel reads the ISO 9660 volume identifier of dev.
func isoLabel(dev string) (string, error) {
	f, err := os.Open(dev) //nolint:gosec // a block device we scan on purpose
	if err != nil {
		return "", err
	}
	defer f.Close()
	pvd := make([]byte, 72)
	if _, err := f.ReadAt(pvd, 32768); err != nil {
		return "", err
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return "", errors.New("not ISO 9660")
	}
	return strings.TrimRight(string(pvd[40:72]), " \x00"), nil
}
