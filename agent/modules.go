package agent

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// moduleLoadOrder reads a modules.dep (as depmod writes it: "<path>: <dep
// path> <dep path>…", every dependency listed, the ones to load first
// last) and returns the module paths to load, in order, for names. A name
// may use '-' or '_'. A module needed twice is loaded once.
func moduleLoadOrder(modulesDep io.Reader, names []string) ([]string, error) {
	deps := map[string][]string{} // module name → [its path, its deps…]
	sc := bufio.NewScanner(modulesDep)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[moduleName(mod)] = append([]string{mod}, strings.Fields(rest)...)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules.dep: %w", err)
	}
	var order []string
	for _, n := range names {
		entry, ok := deps[moduleName(n)]
		if !ok {
			return nil, fmt.Errorf("module %q is not in modules.dep", n)
		}
		mod, ds := entry[0], entry[1:]
		for i := len(ds) - 1; i >= 0; i-- {
			if !slices.Contains(order, ds[i]) {
				order = append(order, ds[i])
			}
		}
		if !slices.Contains(order, mod) {
			order = append(order, mod)
		}
	}
	return order, nil
}

// moduleName turns "kernel/drivers/net/virtio_net.ko.xz" or "virtio-net"
// into "virtio_net".
func moduleName(p string) string {
	b := path.Base(strings.TrimSpace(p))
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}
