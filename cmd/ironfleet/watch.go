package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/internal/apiclient"
	"github.com/ironfleet/ironfleet/internal/wait"
)

func newWatchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Show nodes per provision state and the lock lines, live",
		Long: `watch polls the API and redraws, every --interval, how many nodes are in each
provision state and the nodes whose lock has the longest lines (holder, purpose,
waiters, longest wait). Ctrl-C stops it.`,
		Args: cobra.NoArgs,
		RunE: runWatch,
	}
	f := cmd.Flags()
	f.String("api", defaultAPIURL, "API URL")
	f.Duration("interval", time.Second, "how often to redraw")
	f.Int("locks", 10, "lock lines to show")
	f.Bool("once", false, "draw once and exit (no screen clearing)")
	return cmd
}

type watchLock struct {
	Node          string `json:"node"`
	Holder        string `json:"holder"`
	Purpose       string `json:"purpose"`
	LineLength    int    `json:"line_length"`
	LongestWaitMS int64  `json:"longest_wait_ms"`
}

func runWatch(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	base, _ := f.GetString("api")
	interval, _ := f.GetDuration("interval")
	nlocks, _ := f.GetInt("locks")
	once, _ := f.GetBool("once")
	if interval < 100*time.Millisecond {
		return fmt.Errorf("--interval %s: want at least 100ms", interval)
	}
	ctx := cmd.Context()
	c := &apiclient.Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 5 * time.Second}}
	out := cmd.OutOrStdout()
	for {
		screen, err := watchScreen(ctx, c, nlocks)
		if err != nil {
			screen = fmt.Sprintf("ironfleet watch — %s\n\n  cannot read the API: %v\n", base, err)
		}
		if once {
			_, werr := io.WriteString(out, screen)
			if err != nil {
				return err
			}
			return werr
		}
		// Clear the screen and draw from the top.
		fmt.Fprint(out, "\033[H\033[2J"+screen)
		if wait.Sleep(ctx, interval) != nil {
			return nil
		}
	}
}

func watchScreen(ctx context.Context, c *apiclient.Client, nlocks int) (string, error) {
	nodes, err := apiclient.ListNodes[struct {
		State string `json:"provision_state"`
	}](ctx, c, "/v1/nodes?fields=provision_state&limit=1000")
	if err != nil {
		return "", err
	}
	counts := map[string]int{}
	for _, n := range nodes {
		counts[n.State]++
	}
	var locks struct {
		Locks []watchLock `json:"locks"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/locks", nil, &locks); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ironfleet watch — %s — %s\n\nnodes: %d\n", c.Base, time.Now().Format(time.TimeOnly), len(nodes))
	states := make([]string, 0, len(counts))
	for s := range counts {
		states = append(states, s)
	}
	sort.Strings(states)
	for _, s := range states {
		fmt.Fprintf(&b, "  %-16s %5d  %s\n", s, counts[s], strings.Repeat("█", min(counts[s], 60)))
	}
	fmt.Fprintf(&b, "\nlocks held: %d (longest lines first)\n", len(locks.Locks))
	for i, l := range locks.Locks {
		if i >= nlocks {
			fmt.Fprintf(&b, "  … %d more\n", len(locks.Locks)-nlocks)
			break
		}
		fmt.Fprintf(&b, "  %-36s %-14s %-16s line %2d  longest wait %s\n", l.Node, l.Holder, l.Purpose,
			l.LineLength, (time.Duration(l.LongestWaitMS) * time.Millisecond).String())
	}
	return b.String(), nil
}
