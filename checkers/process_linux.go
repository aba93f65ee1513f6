package checkers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// pidAlive reports whether pid runs: it exists and is not a zombie.
func pidAlive(pid int) error {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return errors.New("not running")
	}
	// EPERM still means it exists. A zombie has exited: not running.
	if zombie(strconv.Itoa(pid)) {
		return errors.New("exited (zombie)")
	}
	return nil
}

// processByName looks for a live process whose comm (the kernel's name,
// 15 bytes at most) or argv[0] base name is name.
func processByName(ctx context.Context, name string) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("process %q: reading /proc: %w", name, err)
	}
	for _, e := range entries {
		if ctx.Err() != nil {
			return fmt.Errorf("process %q: %w", name, ctx.Err())
		}
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		if !matches(pid, name) || zombie(pid) {
			continue
		}
		return nil
	}
	return fmt.Errorf("process %q: no such process runs (compared with /proc/*/comm and argv[0])", name)
}

func matches(pid, name string) bool {
	if comm, err := os.ReadFile("/proc/" + pid + "/comm"); err == nil && string(bytes.TrimSpace(comm)) == name {
		return true
	}
	cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
	if err != nil || len(cmdline) == 0 {
		return false // kernel threads have none
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(argv0)) == name
}

// zombie reports whether /proc/pid/stat says the process is a zombie.
func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}
