//go:build !windows

package agent

import "syscall"

// errRefused is the platform's "connection refused".
const errRefused = syscall.ECONNREFUSED
