//go:build !windows

package config

import "io/fs"

// interfacesHint says how to list interfaces on this OS.
const interfacesHint = "ip link lists them"

// othersCanAccess reports whether group or others have any permission on a
// file: a gossip key must be the agent's alone.
func othersCanAccess(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o077 != 0 }

// canExecute reports whether a file has an execute bit, which a command
// line's program needs.
func canExecute(fi fs.FileInfo) bool { return fi.Mode().Perm()&0o111 != 0 }
