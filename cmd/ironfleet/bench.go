package main

import "github.com/spf13/cobra"

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ironfleet side by side with the alternatives, in one run",
	}
	cmd.AddCommand(newBenchLockCmd())
	return cmd
}
