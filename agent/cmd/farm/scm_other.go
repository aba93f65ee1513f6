//go:build !windows

package main

// runUnderServiceManager reports false: outside Windows a service manager
// (systemd) runs `farm agent` like a terminal does, with signals, so there is
// one start path and nothing to hand over.
func runUnderServiceManager(string, logSink) (bool, error) { return false, nil }
