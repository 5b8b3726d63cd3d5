package lab

import (
	"testing"
	"time"
)

func TestTimelineRender(t *testing.T) {
	var tl Timeline
	t0 := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	tl.Mark("lookup", t0.Add(12500*time.Millisecond))
	tl.Mark("power on", t0)
	tl.Mark("before power on", t0.Add(-time.Second))
	tl.Mark("lookup", t0.Add(20*time.Second)) // a later duplicate is ignored
	got := tl.Render("run 1", "power on")
	want := "run 1\n     -1.0s  before power on\n     +0.0s  power on\n    +12.5s  lookup\n"
	if got != want {
		t.Errorf("Render =\n%q\nwant\n%q", got, want)
	}
	if got := (&Timeline{}).Render("empty", "x"); got != "empty\n  (no milestones)\n" {
		t.Errorf("empty Render = %q", got)
	}
}
