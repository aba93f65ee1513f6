package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Config is one virtual IP this node claims.
type Config struct {
	// Addr is the VIP, IPv4 or IPv6, the same on every node.
	Addr netip.Addr
	// Interface is the node's interface on the farm's LAN (the parent of the
	// holder device; ARP/ND are answered there).
	Interface string
	// Mode selects how frames for the VIP reach every node.
	Mode Mode
}

// Validate checks what does not depend on the host, so `farm check` can
// reject a bad config before anything is touched.
func (c Config) Validate() error {
	a := c.Addr
	switch {
	case !a.IsValid():
		return errors.New("vip address is missing")
	case a.Is4In6():
		return fmt.Errorf("vip %s: write IPv4-mapped addresses as plain IPv4 (%s)", a, a.Unmap())
	case a.Zone() != "":
		return fmt.Errorf("vip %s: a VIP cannot carry a zone", a)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return fmt.Errorf("vip %s: not a usable unicast address (unspecified, loopback, multicast and link-local are refused)", a)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("vip %s: not a usable unicast address", a)
	}
	if c.Interface == "" {
		return fmt.Errorf("vip %s: interface is missing", a)
	}
	if err := checkInterfaceName(c.Interface); err != nil {
		return fmt.Errorf("vip %s: interface %q: %w", a, c.Interface, err)
	}
	if c.Mode > maxMode {
		return fmt.Errorf("vip %s: mode %d is not one of vmac, multicast, igmp", a, uint8(c.Mode))
	}
	return nil
}

// holderPrefix names the devices this package creates, one per VIP
// (farmv0, farmv1, ...), so Cleanup can find a crashed agent's leftovers.
const holderPrefix = "farmv"

// nftTable is the nftables netdev table holding every chain this package
// installs; Cleanup deletes it by name.
const nftTable = "farm_vip"

// holderName is the name of the device holding VIP number i.
func holderName(i int) string { return holderPrefix + strconv.Itoa(i) }

// isHolderName reports whether name is one holderName produces.
func isHolderName(name string) bool {
	rest, ok := strings.CutPrefix(name, holderPrefix)
	if !ok || rest == "" || len(name) > 15 {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// maxVIPs keeps holder names within the 15 characters Linux allows.
const maxVIPs = 10000

// checkLinuxName checks a Linux interface name: at most 15 bytes (IFNAMSIZ
// less the NUL), none of the characters the kernel refuses or the nft rules
// the package writes could not quote.
func checkLinuxName(name string) error {
	if len(name) > 15 || strings.ContainsAny(name, "/ \t\n:\"\\;{}#") {
		return errors.New("not a valid Linux interface name (at most 15 characters, no spaces, / : \" \\ ; { } #)")
	}
	return nil
}

// checkWindowsName checks a Windows interface alias ("Ethernet 2", the name
// Get-NetAdapter shows): spaces are common and allowed; control characters,
// surrounding spaces and more than 256 characters are not.
func checkWindowsName(name string) error {
	if len(name) > 256 || strings.TrimSpace(name) != name {
		return errors.New("not a valid Windows interface alias (at most 256 characters, no leading or trailing spaces): use the Name column of Get-NetAdapter")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errors.New("not a valid Windows interface alias (control character): use the Name column of Get-NetAdapter")
		}
	}
	return nil
}
