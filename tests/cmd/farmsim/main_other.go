//go:build !linux

// Command farmsim reads Linux's /proc and network namespaces; elsewhere it
// only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "farmsim: runs on Linux only")
	os.Exit(1)
}
