package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/transport"
	"github.com/ironfleet/ironfleet/transport/wire"
)

func newEventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print fleet events (state changes, task outcomes, lock changes) from NATS",
		Long: `events prints the events on the EVENTS stream: node provision and power state
changes, task outcomes (task.dead is a task given up on, with the reason), lock
handoffs and expiries. It prints the stored events and exits, or with --follow
keeps printing new ones until interrupted. It only reads: it creates nothing
durable on the server.`,
		Example: `  ironfleet events --follow
  ironfleet events --node 6f1c… --since 1h --json | jq .`,
		Args: cobra.NoArgs,
		RunE: runEvents,
	}
	f := cmd.Flags()
	f.BoolP("follow", "f", false, "keep printing new events until interrupted")
	f.String("node", "", "only events of this node UUID")
	f.Bool("json", false, "print each event as one JSON object per line")
	f.Duration("since", 0, "only events from this long ago on (0: every stored event; with --follow and no --since: only new ones)")
	addNATSFlags(f)
	return cmd
}

func runEvents(cmd *cobra.Command, _ []string) error {
	log, err := newLogger(cmd)
	if err != nil {
		return err
	}
	f := cmd.Flags()
	follow, _ := f.GetBool("follow")
	node, _ := f.GetString("node")
	asJSON, _ := f.GetBool("json")
	since, _ := f.GetDuration("since")
	ctx := cmd.Context()
	nc, err := connectNATS(ctx, f, log, "ironfleet-events")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sub := transport.EventSubscription{
		Node:    node,
		Follow:  follow,
		NewOnly: follow && !f.Changed("since"),
		OnError: func(err error) { log.Warn("skipping event", "err", err) },
	}
	if since > 0 {
		sub.Since = time.Now().Add(-since)
	}
	out := cmd.OutOrStdout()
	var werr error
	show := func(ev wire.Event) {
		if werr == nil {
			werr = writeEvent(out, ev, asJSON)
		}
	}
	if err := transport.SubscribeEvents(ctx, js, sub, show); err != nil {
		return err
	}
	return werr
}

// writeEvent prints one event as a line of text or of JSON.
func writeEvent(w io.Writer, ev wire.Event, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-21s", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Type)
	for _, kv := range [][2]string{{"node", ev.Node}, {"task", ev.Task}, {"op", string(ev.Op)}, {"conductor", ev.Conductor}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if ev.From != "" || ev.To != "" {
		fmt.Fprintf(&b, " %q → %q", ev.From, ev.To)
	}
	if ev.Code != "" {
		fmt.Fprintf(&b, " code=%s", ev.Code)
	}
	if ev.Message != "" {
		fmt.Fprintf(&b, " %s", ev.Message)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}
