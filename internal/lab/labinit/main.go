// Command labinit is the /init of the hardware lab's instance image: the
// "operating system" a deploy writes to the machine's disk. It brings the
// machine up as the agent does (mounts, virtio modules, static address from
// ironfleet.* kernel arguments), prints Marker on the console, reports to
// lab.report=<url> on the kernel command line with an HTTP POST, and then
// idles (init must never exit).
package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ironfleet/ironfleet/agent"
)

// Marker is printed on the serial console once the instance is up.
const Marker = "IRONFLEET-LAB-INSTANCE-UP"

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
	fmt.Println(Marker)
	if report == "" {
		return nil
	}
	host, _ := os.Hostname()
	for attempt := 1; attempt <= 10; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, report, bytes.NewReader([]byte(Marker+" "+host)))
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
