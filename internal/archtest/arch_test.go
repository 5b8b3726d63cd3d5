package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/ironfleet/ironfleet/"

// Besides its row in allowed, a package may import the leaf helpers
// (which import nothing of ours), unless it is standalone: the lock and the
// wire packages import nothing of ours at all.
var (
	leaves     = []string{"internal/wait", "internal/graceful"}
	standalone = []string{"transport/wire", "lock", "agent/protocol"}
)

// allowed lists, per package, the packages of ours it may import;
// docs/architecture.md explains each row. A package not listed may import
// anything but cmd/.
var allowed = map[string][]string{
	"transport/wire":     {},
	"lock":               {},
	"agent/protocol":     {},
	"internal/identity":  {},
	"internal/buildinfo": {},
	"internal/provision": {"transport/wire"},
	"internal/hardware":  {"transport/wire"},
	"internal/steps":     {"transport/wire", "internal/hardware"},
	"transport":          {"transport/wire", "internal/provision"},
	"internal/dispatch":  {"transport/wire", "internal/provision", "lock"},
	"api":                {"transport/wire", "internal/provision", "internal/hardware", "internal/steps", "internal/dispatch", "lock", "transport", "internal/configdrive", "internal/rootdevice"},
	"conductor": {"transport/wire", "internal/provision", "internal/hardware", "internal/steps", "internal/dispatch", "internal/identity",
		"lock", "transport", "agent/protocol", "internal/configdrive", "internal/rootdevice"},
	"conductor/ipmi": {"transport/wire"},
	"conductor/pxe":  {"transport/wire"},
	"conductor/sim":  {"transport/wire"},
	"agent":          {"agent/protocol", "transport/wire", "internal/buildinfo", "internal/configdrive"},
	"agent/simagent": {"agent", "agent/protocol", "internal/buildinfo"},

	// The config drive: built by the conductor, checked by the API,
	// written by the agent.
	"internal/configdrive": {},
	// Root device hints: checked by the API, matched by the conductor.
	"internal/rootdevice": {},
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// TestImportRules: every package imports only what docs/architecture.md
// allows it, directly; and api never depends on a conductor package nor
// conductor on the agent beyond its protocol, however indirectly.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		name := strings.TrimPrefix(p.ImportPath, module)
		rule, ruled := allowed[name]
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			switch {
			case ruled && slices.Contains(leaves, dep) && !slices.Contains(standalone, name):
			case ruled && !slices.Contains(rule, dep):
				t.Errorf("%s imports %s; it may import only %v", name, dep, rule)
			case !ruled && strings.HasPrefix(dep, "cmd/") && !strings.HasPrefix(name, "cmd/"):
				t.Errorf("%s imports %s: only cmd/ may", name, dep)
			}
		}
		for _, d := range p.Deps {
			dep := strings.TrimPrefix(d, module)
			if name == "api" && (dep == "conductor" || strings.HasPrefix(dep, "conductor/")) {
				t.Errorf("api depends on %s", dep)
			}
			if name == "conductor" && (dep == "agent" || strings.HasPrefix(dep, "agent/")) && dep != "agent/protocol" {
				t.Errorf("conductor depends on %s, not only on agent/protocol", dep)
			}
		}
	}
	if seen < len(allowed) {
		t.Fatalf("go list named %d packages, fewer than the %d the rules cover", seen, len(allowed))
	}
}
