package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/webfarm/farm/console"
)

func certCmd() *cobra.Command {
	var certPath, keyPath, hosts string
	var force bool
	c := &cobra.Command{
		Use:   "cert",
		Short: "Make a self-signed TLS certificate and key for the console (console.tls_cert, console.tls_key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var hs []string
			for _, h := range strings.Split(hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hs = append(hs, h)
				}
			}
			if len(hs) == 0 {
				hs = console.DefaultCertHosts()
			}
			if err := console.WriteSelfSigned(certPath, keyPath, hs, force); err != nil {
				return fmt.Errorf("farm cert: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s and %s (valid for %s)\nset console.tls_cert and console.tls_key to them and restart the agent\n",
				certPath, keyPath, strings.Join(hs, ", "))
			return nil
		},
	}
	c.Flags().StringVar(&certPath, "cert", "/etc/farm/console.crt", "certificate file to write")
	c.Flags().StringVar(&keyPath, "key", "/etc/farm/console.key", "private key file to write (mode 0600)")
	c.Flags().StringVar(&hosts, "hosts", "", "comma-separated names and addresses (default: host name, localhost and this host's addresses)")
	c.Flags().BoolVar(&force, "force", false, "replace an existing pair")
	return c
}
