// Package windivert is the data path engine of Windows nodes: WinDivert
// (https://reqrypt.org/windivert.html) diverts every inbound packet to a
// VIP's balanced ports to the engine, which decides it with the same
// filter.Decider and bucket function as the Linux engines, keeps the flows
// it accepts in a flow table of its own (Windows has no conntrack marks)
// and reinjects the packets of this node's flows; the others are dropped.
//
// The pure parts (flow table, per-packet decision, batch splitting, filter
// string, the WINDIVERT_ADDRESS layout, virtual MACs, the crash guard's
// record and the host commands) build and are tested on every system; the
// binding over WinDivert.dll (cgo-free, golang.org/x/sys/windows) and Run
// are Windows x64 only. WinDivert is LGPLv3 (or GPLv2): it is not linked
// in, the binding loads WinDivert.dll at run time from the directory of
// farm.exe, and WinDivert.dll and WinDivert64.sys ship beside it.
//
// README.md explains the fail-closed design (the crash guard keeps the
// WinDivert handle open in a suspended holder process, so a crashed agent's
// filter goes on dropping; the VIP addresses exist only while the engine
// runs; an optional firewall guard), the NIC and network set-up of
// scripts/iis/network.ps1, and what has and has not been run on a real
// Windows host.
package windivert
