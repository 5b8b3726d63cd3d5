package main

import "github.com/spf13/cobra"

// newBenchCmd is the parent of the side-by-side benchmarks; each prints a
// table with ratios, or one JSON object per implementation with --json.
func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ironfleet side by side with the alternatives, in one run",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchLockCmd(), newBenchBusCmd(), newBenchAPICmd(), newBenchFleetCmd())
	return cmd
}
