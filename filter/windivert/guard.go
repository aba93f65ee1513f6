package windivert

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"github.com/webfarm/farm/filter"
)

// GuardFile is the crash guard's record, in Spec.StateDir. It names the
// holder process keeping the engine's WinDivert handle open (so a crashed
// agent's filter keeps dropping) and what the engine added to the host,
// so that the next engine can adopt the handle and scripts/iis/guard.ps1
// can release everything when no agent will come back.
const GuardFile = "windivert-guard.json"

// FirewallGroup is the Windows Firewall group of the firewall guard's
// rules; every rule in it is the engine's (guard.ps1 removes the group).
const FirewallGroup = "farm-windivert-guard"

// guardRecord is GuardFile's content.
type guardRecord struct {
	// PID and Created (the process creation time, a FILETIME) name the
	// holder; Created guards against a reused PID.
	PID     uint32 `json:"pid"`
	Created uint64 `json:"created"`
	// Handle is the WinDivert handle's value in the holder's handle table.
	Handle uint64 `json:"handle"`
	// Priority and Filter are the handle's, so a new engine adopts it only
	// when it would open the same one.
	Priority int16  `json:"priority"`
	Filter   string `json:"filter"`
	// Adapter and VIPs are the addresses the engine adds to that adapter
	// while it runs; Firewall tells whether it installed the guard rules.
	Adapter  string   `json:"adapter"`
	VIPs     []string `json:"vips"`
	Firewall bool     `json:"firewall,omitempty"`
}

// readGuard reads the record in dir; no record is (nil, nil).
func readGuard(dir string) (*guardRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, GuardFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r guardRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it after running scripts/iis/guard.ps1 release)", filepath.Join(dir, GuardFile), err)
	}
	return &r, nil
}

// writeGuard replaces the record in dir atomically (a crash leaves the
// old record or the new one, never half of one).
func writeGuard(dir string, r *guardRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, GuardFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, GuardFile))
}

// removeGuard deletes the record in dir, if any.
func removeGuard(dir string) error {
	err := os.Remove(filepath.Join(dir, GuardFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// otherPriority returns the priority a new handle takes while the handle
// of a previous engine, at prev, may still be open: base or base+1,
// whichever prev is not.
func otherPriority(base, prev int16) int16 {
	if prev == base {
		return base + 1
	}
	return base
}

// The engine changes the host with netsh (addresses) and PowerShell
// (firewall rules); the command lines are built here, pure and tested,
// and run by engine_windows.go.

// addressCommand returns the netsh command line that adds (add) or
// deletes a VIP on adapter, in the active store only: the address is gone
// after a reboot, so a node that boots never answers for the VIP before
// its engine filters. The address is never used as a source for
// connections the node opens (gossip, checkers), only for replies.
func addressCommand(add bool, adapter string, a netip.Addr) string {
	verb := "delete"
	if add {
		verb = "add"
	}
	var b strings.Builder
	if a.Is4() {
		fmt.Fprintf(&b, `netsh interface ipv4 %s address name="%s" address=%s`, verb, adapter, a)
		if add {
			b.WriteString(" mask=255.255.255.255")
		}
	} else {
		fmt.Fprintf(&b, `netsh interface ipv6 %s address interface="%s" address=%s`, verb, adapter, a)
		if add {
			b.WriteString("/128")
		}
	}
	b.WriteString(" store=active")
	if add {
		b.WriteString(" skipassource=true")
	}
	return b.String()
}

// psQuote returns s as a single-quoted PowerShell string.
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// psList returns a PowerShell array of quoted strings.
func psList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = psQuote(s)
	}
	return strings.Join(q, ",")
}

// firewallScript returns the PowerShell that removes the firewall guard's
// rules and, when install is set, adds them again for spec: one block rule
// per balanced protocol, inbound, to the VIPs' balanced ports, on the LAN
// adapters (the VIPs' interfaces). Packets the engine accepts are
// reinjected as arriving on the VIP adapter, which the rules do not name.
func firewallScript(s Spec, install bool) string {
	var b strings.Builder
	b.WriteString("$ErrorActionPreference = 'Stop'\n")
	fmt.Fprintf(&b, "Get-NetFirewallRule -Group %s -ErrorAction SilentlyContinue | Remove-NetFirewallRule\n", psQuote(FirewallGroup))
	if !install {
		return b.String()
	}
	var addrs, lans []string
	for _, a := range vipAddrs(s) {
		addrs = append(addrs, a.String())
	}
	seen := map[string]bool{}
	for _, v := range s.VIPs {
		if !seen[v.Interface] {
			seen[v.Interface] = true
			lans = append(lans, v.Interface)
		}
	}
	for _, proto := range []uint8{filter.ProtoTCP, filter.ProtoUDP} {
		var ports []string
		for _, r := range protoPorts(s, proto).Ranges() {
			ports = append(ports, r.String())
		}
		if len(ports) == 0 {
			continue
		}
		name := filter.ProtoName(proto)
		fmt.Fprintf(&b, "New-NetFirewallRule -Name %s -DisplayName %s -Group %s -Direction Inbound -Action Block -Protocol %s -LocalAddress %s -LocalPort %s -InterfaceAlias %s | Out-Null\n",
			psQuote(FirewallGroup+"-"+name), psQuote("farm WinDivert guard ("+name+")"), psQuote(FirewallGroup),
			strings.ToUpper(name), psList(addrs), psList(ports), psList(lans))
	}
	return b.String()
}

// encodePowerShell returns script as powershell.exe -EncodedCommand takes
// it (base64 of UTF-16LE), so no quoting of the command line is needed.
func encodePowerShell(script string) string {
	u := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return base64.StdEncoding.EncodeToString(b)
}
