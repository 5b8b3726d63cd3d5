package lab

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ErrNoKernel is wrapped when Debian's kernel cannot be found or unpacked.
var ErrNoKernel = errors.New("lab: no Debian kernel")

// Kernel is a Debian kernel package unpacked (not installed) in a directory.
type Kernel struct {
	// Release is the kernel release, e.g. 6.1.0-56-amd64.
	Release string
	// Vmlinuz is the path of the kernel image.
	Vmlinuz string
	// Modules is the directory lib/modules/<Release>.
	Modules string
}

var releaseRE = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~-]*-amd64$`)

// KernelRelease asks apt which kernel release linux-image-amd64 depends on
// (the current Debian kernel), e.g. "6.1.0-56-amd64".
func KernelRelease(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("%w: apt-cache depends linux-image-amd64: %w", ErrNoKernel, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		dep, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: linux-image-")
		if ok && releaseRE.MatchString(dep) {
			return dep, nil
		}
	}
	return "", fmt.Errorf("%w: apt-cache names no linux-image-<release>-amd64 for linux-image-amd64", ErrNoKernel)
}

// FetchKernel returns Debian's kernel release unpacked under cache,
// downloading the package (apt-get download) and unpacking it (dpkg-deb -x)
// when it is not there yet. The package is never installed; the unpacked
// tree is reused by later runs.
func FetchKernel(ctx context.Context, cache, release string) (Kernel, error) {
	if !releaseRE.MatchString(release) {
		return Kernel{}, fmt.Errorf("%w: %q is not a kernel release like 6.1.0-56-amd64", ErrNoKernel, release)
	}
	dir := filepath.Join(cache, "kernel-"+release)
	k := Kernel{
		Release: release,
		Vmlinuz: filepath.Join(dir, "boot", "vmlinuz-"+release),
		Modules: filepath.Join(dir, "lib", "modules", release),
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return k, nil
	}
	tmp, err := os.MkdirTemp(cache, ".kernel-")
	if err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	defer os.RemoveAll(tmp)
	pkg := "linux-image-" + release
	dl := exec.CommandContext(ctx, "apt-get", "download", pkg)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("%w: apt-get download %s: %w\n%s", ErrNoKernel, pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(debs) != 1 {
		return Kernel{}, fmt.Errorf("%w: apt-get download %s left %d packages", ErrNoKernel, pkg, len(debs))
	}
	tree := filepath.Join(tmp, "tree")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], tree).CombinedOutput(); err != nil {
		return Kernel{}, fmt.Errorf("%w: dpkg-deb -x: %w\n%s", ErrNoKernel, err, out)
	}
	if err := os.WriteFile(filepath.Join(tree, ".complete"), nil, 0o600); err != nil {
		return Kernel{}, err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tree, dir); err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	if _, err := os.Stat(k.Vmlinuz); err != nil {
		return Kernel{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	return k, nil
}

// ModuleSet is a set of kernel modules with their dependencies, in load
// order, as paths relative to the modules directory.
type ModuleSet struct {
	// Paths in load order: every module after the ones it depends on.
	Paths []string
	deps  map[string][]string // path → direct dependency paths
}

// ResolveModules finds names (and what they depend on, read from each
// module's .modinfo section) under k.Modules. Debian's package carries no
// modules.dep (depmod writes it at install), so the ramdisk gets one made
// from this set.
func (k Kernel) ResolveModules(names []string) (ModuleSet, error) {
	byName := map[string]string{}
	err := filepath.WalkDir(k.Modules, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			rel, _ := filepath.Rel(k.Modules, p)
			byName[modName(d.Name())] = filepath.ToSlash(rel)
		}
		return nil
	})
	if err != nil {
		return ModuleSet{}, fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	s := ModuleSet{deps: map[string][]string{}}
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		name = modName(name)
		rel, ok := byName[name]
		if !ok {
			return fmt.Errorf("%w: module %q not found under %s", ErrNoKernel, name, k.Modules)
		}
		if slices.Contains(s.Paths, rel) {
			return nil
		}
		if slices.Contains(stack, name) {
			return fmt.Errorf("lab: module dependency cycle through %s", name)
		}
		deps, err := moduleDepends(filepath.Join(k.Modules, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, append(stack, name)); err != nil {
				return err
			}
			s.deps[rel] = append(s.deps[rel], byName[modName(d)])
		}
		s.Paths = append(s.Paths, rel)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return ModuleSet{}, err
		}
	}
	return s, nil
}

// ModulesDep renders the set as a modules.dep: each module followed by all
// it needs, the ones to load first last (as depmod writes it).
func (s ModuleSet) ModulesDep() []byte {
	var b bytes.Buffer
	for _, p := range s.Paths {
		var all []string
		var walk func(string)
		walk = func(q string) {
			for _, d := range s.deps[q] {
				walk(d)
				if !slices.Contains(all, d) {
					all = append(all, d)
				}
			}
		}
		walk(p)
		slices.Reverse(all)
		fmt.Fprintf(&b, "%s:", p)
		for _, d := range all {
			fmt.Fprintf(&b, " %s", d)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// moduleDepends reads the depends= entry of a module's .modinfo section.
// Only uncompressed modules (Debian 12's) are supported.
func moduleDepends(path string) ([]string, error) {
	if !strings.HasSuffix(path, ".ko") {
		return nil, fmt.Errorf("lab: %s: compressed modules are not supported", path)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lab: module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("lab: module %s has no .modinfo", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("lab: module %s: %w", path, err)
	}
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var out []string
			for d := range strings.SplitSeq(string(v), ",") {
				if d != "" {
					out = append(out, d)
				}
			}
			return out, nil
		}
	}
	return nil, nil
}

func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}
