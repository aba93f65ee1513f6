// Command farm is the farm clustering agent and its command-line client:
// `farm agent` runs one node; the other subcommands check a config, make a
// gossip key, clean up after a crashed agent and talk to a running agent.
package main

import (
	"os"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}
