package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func certCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cert",
		Short: "Make a self-signed TLS certificate and key for the console",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("farm cert: not built yet")
		},
	}
}
