//go:build !linux

// Command farmlab needs Linux network namespaces; elsewhere it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "farmlab: the lab needs Linux network namespaces")
	os.Exit(1)
}
