//go:build windows

package vip

// checkInterfaceName checks an interface name as this platform spells them.
func checkInterfaceName(name string) error { return checkWindowsName(name) }
