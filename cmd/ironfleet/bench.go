package main

import "github.com/spf13/cobra"

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks comparing ironfleet's parts with their baselines in one run",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newBenchBusCmd())
	return cmd
}
