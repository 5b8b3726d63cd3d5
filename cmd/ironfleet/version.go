package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/ironfleet/ironfleet/internal/buildinfo"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "ironfleet %s (commit %s, %s %s/%s)\n",
				buildinfo.Version, buildinfo.Commit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
