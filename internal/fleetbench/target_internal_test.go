package fleetbench

import (
	"maps"
	"os"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       procStat
		wantErr    bool
	}{
		{
			name: "plain",
			stat: "42 (ironic-api) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 30 20 20 0 1 0 100 1000 10",
			want: procStat{ppid: 7, cpu: 2.5},
		},
		{
			// proc(5): the command name is cut at its last ')', and may
			// hold spaces and parentheses of its own.
			name: "command with spaces and parentheses",
			stat: "43 (a (b) c) R 1 43 43 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 100 1000 10",
			want: procStat{ppid: 1, cpu: 0.1},
		},
		{name: "no command", stat: "44 S 1 2 3", wantErr: true},
		{name: "cut short", stat: "45 (x) S 1 45 45 0", wantErr: true},
		{name: "not a number", stat: "46 (x) S 1 46 46 0 -1 0 0 0 0 0 a 2 3 4 20 0 1 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(tc.stat)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestTreeCPU reads this process's own tree: it is counted, and a pid
// that is gone is an error rather than zero CPU.
func TestTreeCPU(t *testing.T) {
	for i := 0; i < 2_000_000; i++ { // some CPU of our own to count
		_ = strings.Repeat("x", i%7)
	}
	// Given twice, this process counts once.
	cpu, procs, err := treeCPU([]int{os.Getpid(), os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(cpu) != 2 || cpu[0] <= 0 || cpu[1] != 0 || procs < 1 {
		t.Errorf("got %v CPU-s in %d processes, want some in at least this one, counted once", cpu, procs)
	}
	if _, _, err := treeCPU([]int{1 << 30}); err == nil {
		t.Error("a pid that does not exist: got no error")
	}
}

func TestParseTasks(t *testing.T) {
	const text = `# HELP ironfleet_conductor_tasks_total Tasks handled, by operation and outcome.
# TYPE ironfleet_conductor_tasks_total counter
ironfleet_conductor_tasks_total{op="deploy",outcome="done"} 12
ironfleet_conductor_tasks_total{op="heartbeat",outcome="done"} 30
ironfleet_conductor_tasks_total{op="deploy",outcome="locked"} 2
ironfleet_conductor_task_seconds_bucket{op="deploy",le="0.001"} 0
go_goroutines 12
`
	got, err := parseTasks(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"done": 42, "locked": 2}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
