//go:build !unix && !windows

package script

import "os/exec"

// command runs path directly where there is no shell convention to follow.
func command(path string, args []string) (string, []string) { return path, args }

// setProcessGroup is a no-op here: on timeout only the script itself is
// killed (exec's default).
func setProcessGroup(cmd *exec.Cmd) {}
