package lab

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Timeline collects a run's milestones (power on, PXE request, lookup, …)
// from the parts that see them, for printing relative to one origin. It is
// safe for concurrent use.
type Timeline struct {
	mu    sync.Mutex
	marks []Milestone
}

// Milestone is one named moment.
type Milestone struct {
	Name string
	At   time.Time
}

// Mark records name at at. Only the first mark of a name is kept unless
// the name differs: later ones with the same name are ignored, so sources
// that see an event repeatedly (heartbeats) can mark freely.
func (t *Timeline) Mark(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.marks {
		if m.Name == name {
			return
		}
	}
	t.marks = append(t.marks, Milestone{Name: name, At: at})
}

// Get returns the time of name and whether it was marked.
func (t *Timeline) Get(name string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.marks {
		if m.Name == name {
			return m.At, true
		}
	}
	return time.Time{}, false
}

// Milestones returns the marks in time order.
func (t *Timeline) Milestones() []Milestone {
	t.mu.Lock()
	ms := slices.Clone(t.marks)
	t.mu.Unlock()
	slices.SortStableFunc(ms, func(a, b Milestone) int { return a.At.Compare(b.At) })
	return ms
}

// Render prints the milestones in time order as seconds since the
// milestone named origin (or the first one, when origin was not marked),
// one a line: "  +12.3s  first heartbeat".
func (t *Timeline) Render(title, origin string) string {
	ms := t.Milestones()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", title)
	if len(ms) == 0 {
		b.WriteString("  (no milestones)\n")
		return b.String()
	}
	zero, ok := t.Get(origin)
	if !ok {
		zero = ms[0].At
	}
	for _, m := range ms {
		fmt.Fprintf(&b, "  %+7.1fs  %s\n", m.At.Sub(zero).Seconds(), m.Name)
	}
	return b.String()
}
