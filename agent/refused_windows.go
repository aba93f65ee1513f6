//go:build windows

package agent

import "golang.org/x/sys/windows"

// errRefused is the platform's "connection refused": Winsock's own code,
// not the syscall.ECONNREFUSED Go invents on Windows.
const errRefused = windows.WSAECONNREFUSED
