//go:build !linux

// Command farmbench needs Linux network namespaces; elsewhere it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "farmbench: the lab needs Linux network namespaces")
	os.Exit(1)
}
