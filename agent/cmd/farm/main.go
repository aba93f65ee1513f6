// Command farm is the farm clustering agent and its command-line client:
// `farm agent` runs one node; the other subcommands check a config, make a
// gossip key, clean up after a crashed agent, install the service and talk
// to a running agent.
package main

import (
	"errors"
	"os"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		var st exitStatus
		if errors.As(err, &st) {
			os.Exit(int(st))
		}
		os.Exit(1)
	}
}
