package deployments

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/ironfleet/ironfleet/internal/redisproc"
	"github.com/ironfleet/ironfleet/internal/redistest"
)

// files returns the paths under the deployments directory whose names
// match one of the glob patterns, sorted.
func files(t *testing.T, patterns ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "." {
			return filepath.SkipDir
		}
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, d.Name()); ok && !d.IsDir() {
				out = append(out, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("no files match %v", patterns)
	}
	return out
}

// yamlDocs decodes every document of a YAML file into generic values.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // a file of this repository
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML documents", path)
	}
	return docs
}

// dig walks nested maps and lists of a decoded YAML or JSON document:
// string keys index maps, ints index lists. It returns nil when the path
// does not exist.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func list(v any) []any { l, _ := v.([]any); return l }

func TestEveryYAMLParses(t *testing.T) {
	for _, path := range files(t, "*.yaml", "*.yml") {
		t.Run(path, func(t *testing.T) { yamlDocs(t, path) })
	}
}

// TestKubernetesManifests checks what kubectl would reject or silently get
// wrong: every object has apiVersion, kind and a name in the ironfleet
// namespace; workloads' selectors match their pods' labels; every
// ConfigMap a pod mounts or reads exists; Services select some workload;
// and the kustomization lists exactly the manifests, with generated files
// that exist.
func TestKubernetesManifests(t *testing.T) {
	kust := yamlDocs(t, "k8s/kustomization.yaml")[0]
	var resources []string
	for _, r := range list(kust["resources"]) {
		resources = append(resources, str(r))
	}
	var manifests []string
	for _, p := range files(t, "*.yaml") {
		if filepath.Dir(p) == "k8s" && filepath.Base(p) != "kustomization.yaml" {
			manifests = append(manifests, filepath.Base(p))
		}
	}
	slices.Sort(resources)
	if !slices.Equal(resources, manifests) {
		t.Errorf("kustomization resources %v, want the manifests %v", resources, manifests)
	}
	configMaps := map[string]bool{}
	for _, g := range list(kust["configMapGenerator"]) {
		configMaps[str(dig(g, "name"))] = true
		for _, f := range list(dig(g, "files")) {
			_, src, _ := strings.Cut(str(f), "=")
			if _, err := os.Stat(filepath.Join("k8s", src)); err != nil {
				t.Errorf("configMapGenerator %s: %v", str(dig(g, "name")), err)
			}
		}
	}

	type workload struct {
		kind, name string
		labels     map[string]any
		pod        any
	}
	var workloads []workload
	var services []map[string]any
	for _, r := range resources {
		for i, d := range yamlDocs(t, filepath.Join("k8s", r)) {
			kind, name := str(d["kind"]), str(dig(d, "metadata", "name"))
			if str(d["apiVersion"]) == "" || kind == "" || name == "" {
				t.Errorf("%s doc %d: want apiVersion, kind and metadata.name, got %q %q %q", r, i, d["apiVersion"], kind, name)
				continue
			}
			if ns := str(dig(d, "metadata", "namespace")); kind != "Namespace" && ns != "ironfleet" {
				t.Errorf("%s %s/%s: namespace %q, want ironfleet", r, kind, name, ns)
			}
			switch kind {
			case "ConfigMap":
				configMaps[name] = true
			case "Service":
				services = append(services, d)
			case "Deployment", "StatefulSet":
				sel, _ := dig(d, "spec", "selector", "matchLabels").(map[string]any)
				labels, _ := dig(d, "spec", "template", "metadata", "labels").(map[string]any)
				if len(sel) == 0 {
					t.Errorf("%s %s: no selector.matchLabels", kind, name)
				}
				for k, v := range sel {
					if labels[k] != v {
						t.Errorf("%s %s: selector %s=%v does not match the pod's labels %v", kind, name, k, v, labels)
					}
				}
				if kind == "StatefulSet" && str(dig(d, "spec", "serviceName")) == "" {
					t.Errorf("StatefulSet %s: no serviceName", name)
				}
				if len(list(dig(d, "spec", "template", "spec", "containers"))) == 0 {
					t.Errorf("%s %s: no containers", kind, name)
				}
				workloads = append(workloads, workload{kind, name, labels, dig(d, "spec", "template", "spec")})
			}
		}
	}
	for _, w := range workloads {
		for _, v := range list(dig(w.pod, "volumes")) {
			if cm := str(dig(v, "configMap", "name")); cm != "" && !configMaps[cm] {
				t.Errorf("%s %s: volume from ConfigMap %q, which no manifest defines", w.kind, w.name, cm)
			}
		}
		for _, c := range list(dig(w.pod, "containers")) {
			if str(dig(c, "image")) == "" {
				t.Errorf("%s %s: container %s has no image", w.kind, w.name, str(dig(c, "name")))
			}
			for _, e := range list(dig(c, "envFrom")) {
				if cm := str(dig(e, "configMapRef", "name")); cm != "" && !configMaps[cm] {
					t.Errorf("%s %s: envFrom ConfigMap %q, which no manifest defines", w.kind, w.name, cm)
				}
			}
		}
	}
	for _, s := range services {
		sel, _ := dig(s, "spec", "selector").(map[string]any)
		matched := false
		for _, w := range workloads {
			ok := len(sel) > 0
			for k, v := range sel {
				ok = ok && w.labels[k] == v
			}
			matched = matched || ok
		}
		if !matched {
			t.Errorf("Service %s selects %v: no workload has those labels", str(dig(s, "metadata", "name")), sel)
		}
	}
}

// TestNATSConfigs loads every NATS config the way `nats-server -t` does
// (server.ProcessConfigFile) and checks the cluster is what the README
// promises: three servers with distinct names and ports, all routes to
// each other, JetStream with fsync on every write.
func TestNATSConfigs(t *testing.T) {
	paths := files(t, "nats-*.conf")
	if len(paths) != 3 {
		t.Fatalf("got %d NATS configs %v, want 3", len(paths), paths)
	}
	seen := map[string]string{}
	for _, p := range paths {
		o, err := server.ProcessConfigFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		checkNATS(t, p, o, 3)
		for _, key := range []string{o.ServerName, net.JoinHostPort(o.Host, strconv.Itoa(o.Port)),
			net.JoinHostPort(o.Cluster.Host, strconv.Itoa(o.Cluster.Port)), strconv.Itoa(o.HTTPPort)} {
			if other, dup := seen[key]; dup {
				t.Errorf("%s and %s both use %s", other, p, key)
			}
			seen[key] = p
		}
	}

	// The Kubernetes cluster's config, from its ConfigMap, with the
	// variable the StatefulSet sets.
	for _, d := range yamlDocs(t, "k8s/nats.yaml") {
		conf := str(dig(d, "data", "nats.conf"))
		if conf == "" {
			continue
		}
		p := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("POD_NAME", "nats-1")
		o, err := server.ProcessConfigFile(p)
		if err != nil {
			t.Fatalf("k8s/nats.yaml nats.conf: %v", err)
		}
		checkNATS(t, "k8s/nats.yaml", o, 3)
		if o.ServerName != "nats-1" {
			t.Errorf("k8s nats.conf: server_name %q, want it from POD_NAME", o.ServerName)
		}
	}
}

func checkNATS(t *testing.T, name string, o *server.Options, servers int) {
	t.Helper()
	if !o.JetStream {
		t.Errorf("%s: JetStream is off", name)
	}
	if !o.SyncAlways {
		t.Errorf("%s: sync_interval is not always (see README, NATS durability)", name)
	}
	if o.Cluster.Name != "ironfleet" || o.Cluster.Port == 0 {
		t.Errorf("%s: cluster %q port %d, want ironfleet on a port", name, o.Cluster.Name, o.Cluster.Port)
	}
	if len(o.Routes) != servers {
		t.Errorf("%s: %d routes, want %d (every server, itself included)", name, len(o.Routes), servers)
	}
	if o.ServerName == "" || o.StoreDir == "" || o.HTTPPort == 0 {
		t.Errorf("%s: want server_name, store_dir and a monitor port, got %q %q %d", name, o.ServerName, o.StoreDir, o.HTTPPort)
	}
}

// TestPrometheusConfig checks the scrape config names the api and both
// conductors of `make up`, with host:port targets.
func TestPrometheusConfig(t *testing.T) {
	d := yamlDocs(t, "prometheus/prometheus.yml")[0]
	jobs := map[string][]string{}
	for _, sc := range list(d["scrape_configs"]) {
		job := str(dig(sc, "job_name"))
		if job == "" {
			t.Errorf("scrape config without job_name: %v", sc)
		}
		if _, dup := jobs[job]; dup {
			t.Errorf("job %s twice", job)
		}
		jobs[job] = nil
		for _, st := range list(dig(sc, "static_configs")) {
			for _, tg := range list(dig(st, "targets")) {
				if _, _, err := net.SplitHostPort(str(tg)); err != nil {
					t.Errorf("job %s: target %v: %v", job, tg, err)
				}
				jobs[job] = append(jobs[job], str(tg))
			}
		}
	}
	for job, want := range map[string][]string{
		"ironfleet-api":       {localAPI},
		"ironfleet-conductor": {localMetrics[0], localMetrics[1]},
	} {
		if got := jobs[job]; !slices.Equal(got, want) {
			t.Errorf("job %s targets %v, want %v (make up's)", job, got, want)
		}
	}
}

// TestSystemdUnits checks the units as systemd's INI dialect: sections
// and key=value lines only, the sections a service needs, and an
// ExecStart that runs an ironfleet subcommand.
func TestSystemdUnits(t *testing.T) {
	for _, p := range files(t, "*.service") {
		t.Run(p, func(t *testing.T) {
			u := parseUnit(t, p)
			for _, s := range []string{"Unit", "Service", "Install"} {
				if _, ok := u[s]; !ok {
					t.Errorf("no [%s] section", s)
				}
			}
			exec := u["Service"]["ExecStart"]
			if len(exec) != 1 || !strings.HasPrefix(exec[0], "/usr/local/bin/ironfleet ") {
				t.Errorf("ExecStart %q, want one /usr/local/bin/ironfleet command", exec)
			}
			if len(u["Install"]["WantedBy"]) == 0 {
				t.Error("no WantedBy: enable would do nothing")
			}
		})
	}
}

// parseUnit reads a systemd unit: section → key → values.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path) //nolint:gosec // a file of this repository
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if _, dup := u[section]; dup {
				t.Errorf("%s:%d: section [%s] twice", path, n, section)
			}
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.TrimSpace(k) == "" || strings.HasSuffix(line, "\\") {
				t.Errorf("%s:%d: want key=value in a section, got %q", path, n, line)
				continue
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestContainerfile checks the build stage builds the command that exists
// and the final stage runs it.
func TestContainerfile(t *testing.T) {
	b, err := os.ReadFile("container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if n := strings.Count(s, "\nFROM "); n != 2 {
		t.Errorf("got %d FROM lines, want a build and a run stage", n)
	}
	m := regexp.MustCompile(`-o /out/ironfleet (\./\S+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal("no go build -o /out/ironfleet ./… in the build stage")
	}
	if _, err := os.Stat(filepath.Join("..", m[1], "main.go")); err != nil {
		t.Errorf("builds %s: %v", m[1], err)
	}
	if !strings.Contains(s, `ENTRYPOINT ["/usr/local/bin/ironfleet"]`) {
		t.Error("the final stage does not run /usr/local/bin/ironfleet")
	}
}

// TestRedisConfig starts redis-server on redis.conf (port, dir and socket
// overridden, as make up does) and reads the persistence settings back.
func TestRedisConfig(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		redistest.Unavailable(t, err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	conf, _ := filepath.Abs("redis/redis.conf")
	cmd := exec.CommandContext(t.Context(), bin, conf, "--port", "0", "--unixsocket", sock, "--dir", dir) //nolint:gosec // test binary
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rc := redisAt(t, sock, &out)
	for key, want := range map[string]string{
		"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction", "save": "",
	} {
		got, err := rc.ConfigGet(t.Context(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[key] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", key, got[key], want)
		}
	}
}

// TestSentinelConfig starts redis-sentinel on a copy of sentinel.conf (it
// rewrites its file) with the port, dir and socket overridden and the master
// moved to a free port nobody listens on, and reads the master's settings
// back.
func TestSentinelConfig(t *testing.T) {
	bin, err := exec.LookPath("redis-sentinel")
	if err != nil {
		redistest.Unavailable(t, err)
	}
	ports, err := redisproc.FreePorts(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile("redis/sentinel.conf")
	if err != nil {
		t.Fatal(err)
	}
	monitor := regexp.MustCompile(`(?m)^sentinel monitor ironfleet 127\.0\.0\.1 6379 2$`)
	if !monitor.Match(orig) {
		t.Fatal("sentinel.conf does not monitor ironfleet at 127.0.0.1:6379 with quorum 2")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	moved := monitor.ReplaceAll(orig, fmt.Appendf(nil, "sentinel monitor ironfleet 127.0.0.1 %d 2", ports[1]))
	if err := os.WriteFile(conf, moved, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sentinel.sock")
	cmd := exec.CommandContext(t.Context(), bin, conf, "--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1", //nolint:gosec // test binary
		"--unixsocket", sock, "--dir", dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	redisAt(t, sock, &out) // waits until it answers
	sc := redis.NewSentinelClient(&redis.Options{Network: "unix", Addr: sock})
	defer sc.Close()
	fields, err := sc.Master(t.Context(), "ironfleet").Result()
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"quorum": "2", "down-after-milliseconds": "5000", "failover-timeout": "60000", "parallel-syncs": "1",
	} {
		if fields[key] != want {
			t.Errorf("SENTINEL MASTER ironfleet: %s = %q, want %q", key, fields[key], want)
		}
	}
}
