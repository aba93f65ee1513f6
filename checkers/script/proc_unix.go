//go:build unix

package script

import (
	"os"
	"os/exec"
	"syscall"
)

// command picks how path runs on Unix; see Run.
func command(path string, args []string) (string, []string) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		// Not a file: a command line. "sh" becomes $0, args become $1...
		return "/bin/sh", append([]string{"-c", path, "sh"}, args...)
	case fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0:
		return path, args
	default:
		return "/bin/sh", append([]string{path}, args...)
	}
}

// setProcessGroup puts the script in a process group of its own so that a
// timeout kills everything it started (its children inherit the group), not
// only the shell.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group id is the leader's pid. Kill the group first, then the
		// leader in case it changed its group.
		gerr := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		perr := cmd.Process.Kill()
		if gerr != nil && perr != nil {
			return perr
		}
		return nil
	}
}
