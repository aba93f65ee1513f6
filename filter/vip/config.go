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
	if len(c.Interface) > 15 || strings.ContainsAny(c.Interface, "/ \t\n:\"\\;{}#") {
		return fmt.Errorf("vip %s: interface %q is not a valid Linux interface name", a, c.Interface)
	}
	if c.Mode > ModeMulticast {
		return fmt.Errorf("vip %s: mode %d is not one of vmac, multicast", a, uint8(c.Mode))
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
