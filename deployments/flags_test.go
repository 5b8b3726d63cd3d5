package deployments

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// buildIronfleet builds the ironfleet binary into a temporary directory.
func buildIronfleet(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ironfleet")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/ironfleet").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestManifestFlags runs every ironfleet command line the manifests give
// (systemd ExecStart, Kubernetes container args) with --help appended: the
// binary refuses unknown subcommands and flags, so a renamed flag fails
// here rather than on a server. Every IRONFLEET_* variable the manifests
// set must name a flag of the processes that read it.
func TestManifestFlags(t *testing.T) {
	bin := buildIronfleet(t)
	var lines [][]string
	for _, p := range files(t, "*.service") {
		for _, e := range parseUnit(t, p)["Service"]["ExecStart"] {
			lines = append(lines, strings.Fields(e)[1:])
		}
	}
	for _, d := range yamlDocs(t, "k8s/ironfleet.yaml") {
		for _, c := range list(dig(d, "spec", "template", "spec", "containers")) {
			var args []string
			for _, a := range list(dig(c, "args")) {
				args = append(args, str(a))
			}
			lines = append(lines, args)
		}
	}
	if len(lines) < 4 {
		t.Fatalf("found %d ironfleet command lines, want the api's and the conductor's in systemd and k8s", len(lines))
	}
	helps := map[string]string{}
	for _, args := range lines {
		out, err := exec.CommandContext(t.Context(), bin, append(args, "--help")...).CombinedOutput() //nolint:gosec // our binary
		if err != nil {
			t.Errorf("ironfleet %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		helps[args[0]] = string(out)
	}

	flagOf := func(env string) string {
		return "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "IRONFLEET_")), "_", "-") + " "
	}
	envRe := regexp.MustCompile(`IRONFLEET_[A-Z_]+`)
	for _, d := range yamlDocs(t, "k8s/ironfleet.yaml") {
		for k := range mapOf(dig(d, "data")) {
			if k == "IRONFLEET_LOG_LEVEL" {
				continue // the root's persistent flag
			}
			for _, cmd := range []string{"api", "conductor"} {
				if !strings.Contains(helps[cmd], flagOf(k)) {
					t.Errorf("ConfigMap sets %s: ironfleet %s has no %s", k, cmd, strings.TrimSpace(flagOf(k)))
				}
			}
		}
		for _, c := range list(dig(d, "spec", "template", "spec", "containers")) {
			cmd := str(dig(c, "args", 0))
			for _, e := range list(dig(c, "env")) {
				if k := str(dig(e, "name")); envRe.MatchString(k) && !strings.Contains(helps[cmd], flagOf(k)) {
					t.Errorf("container %s sets %s: ironfleet %s has no %s", str(dig(c, "name")), k, cmd, strings.TrimSpace(flagOf(k)))
				}
			}
		}
	}
	for _, p := range files(t, "*.service") {
		u := parseUnit(t, p)
		cmd := strings.Fields(u["Service"]["ExecStart"][0])[1]
		for _, e := range u["Service"]["Environment"] {
			k, _, _ := strings.Cut(e, "=")
			if !strings.Contains(helps[cmd], flagOf(k)) {
				t.Errorf("%s sets %s: ironfleet %s has no %s", p, k, cmd, strings.TrimSpace(flagOf(k)))
			}
		}
	}
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }
