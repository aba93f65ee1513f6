//go:build windows

package script

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// command picks how path runs on Windows; see Run.
func command(path string, args []string) (string, []string) {
	if _, err := os.Stat(path); err != nil {
		return "cmd.exe", append([]string{"/C", path}, args...)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ps1":
		return "powershell.exe", append([]string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", path}, args...)
	case ".cmd", ".bat":
		return "cmd.exe", append([]string{"/C", path}, args...)
	default:
		return path, args
	}
}

// setProcessGroup starts the script in a new process group and, on timeout,
// kills its whole process tree with taskkill /T, falling back to killing the
// script alone if taskkill cannot run.
func setProcessGroup(cmd *exec.Cmd) {
	const createNewProcessGroup = 0x00000200
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: createNewProcessGroup}
	cmd.Cancel = func() error {
		pid := strconv.Itoa(cmd.Process.Pid)
		kill := exec.Command("taskkill.exe", "/T", "/F", "/PID", pid)
		if err := kill.Run(); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
}
