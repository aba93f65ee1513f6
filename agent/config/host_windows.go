//go:build windows

package config

import "io/fs"

// interfacesHint says how to list interfaces on this OS.
const interfacesHint = "Get-NetAdapter lists them"

// othersCanAccess is false: Windows has no Unix mode bits (Go reports
// 0666/0444), and access is governed by ACLs this check does not read.
func othersCanAccess(fs.FileInfo) bool { return false }

// canExecute is true: Windows runs a file by its extension, not a mode bit.
func canExecute(fs.FileInfo) bool { return true }
