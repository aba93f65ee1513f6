<#
.SYNOPSIS
    farm: prepares a Windows node's network for the WinDivert engine: the
    VIP adapter, the weak host model, and the NIC side of the VIP's mode.
    Run once per node, elevated; -Remove undoes it.

.DESCRIPTION
    The engine adds the VIP addresses (in the active store only) to a
    Microsoft KM-TEST Loopback Adapter named farm-vip while it runs, never
    to the LAN adapter: Windows answers ARP and neighbour solicitations for
    the addresses of an adapter with that adapter's own MAC, which would
    pull every client to one node. So the LAN adapter must accept packets
    for an address of another adapter (weak host receive) and the VIP
    adapter must let replies from the VIP leave by the LAN adapter (weak
    host send). This script sets that up and checks it, and prints what
    the switch and the router need for each VIP.

    -Mode multicast (NLB-style IGMP multicast, the recommended mode): the
    LAN adapter keeps its own MAC. The engine joins each VIP's group
    (239.255.Y.Z for VIP W.X.Y.Z) on it, so the NIC accepts the group's
    MAC 01-00-5E-7F-Y-Z and the stack sends IGMP reports. The router needs
    a static ARP entry VIP -> that MAC; IGMP-snooping switches need an
    IGMP querier on the VLAN (or a static group on the nodes' ports).

    -Mode unicast (NLB-style unicast): -Lan is a dedicated cluster NIC,
    which takes the virtual MAC 02-BF-W-X-Y-Z of the first VIP as its own
    address. Without Windows NLB's source-MAC masking every frame it sends
    carries that MAC, and the switch would learn it and stop flooding: the
    node must never send from this NIC (no default gateway on it; replies
    and gossip leave by a second NIC), or the switch must not learn MACs on
    this VLAN. The router needs a static ARP entry VIP -> 02-BF-W-X-Y-Z.

    Exit 0 when the node is set up (or undone), 1 on failure.

.PARAMETER Lan
    The alias of the adapter the VIPs' frames arrive on (the [[vip]]
    interface of the config; in unicast mode the cluster NIC).

.PARAMETER Vip
    The VIP addresses, IPv4 and/or IPv6.

.PARAMETER Mode
    multicast (default) or unicast, as the [[vip]] mode (vmac = unicast).

.PARAMETER VipAdapter
    The alias of the loopback adapter that holds the VIPs. Default
    farm-vip, the engine's default.

.PARAMETER AllowTcp
    Balanced TCP ports to allow in Windows Firewall on the VIPs, e.g.
    '80,443' (IIS already allows 80 and 443).

.PARAMETER AllowUdp
    Balanced UDP ports to allow in Windows Firewall on the VIPs.

.PARAMETER Remove
    Undo what this script set (the VIP adapter itself stays).

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File network.ps1 -Lan Ethernet -Vip 10.0.0.100,2001:db8::100

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File network.ps1 -Mode unicast -Lan Cluster -Vip 10.0.0.100
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [string]$Lan,
    [Parameter(Mandatory = $true)]
    [string[]]$Vip,
    [ValidateSet('multicast', 'unicast', 'vmac')]
    [string]$Mode = 'multicast',
    [string]$VipAdapter = 'farm-vip',
    [string]$AllowTcp = '',
    [string]$AllowUdp = '',
    [switch]$Remove
)

$Me = 'iis/network.ps1'

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# common.ps1, next to this script, holds what the IIS scripts share.
$common = Join-Path $PSScriptRoot 'common.ps1'
if (-not (Test-Path -LiteralPath $common)) {
    [Console]::Error.WriteLine(('{0}: {1} is missing: copy the whole folder (see README.md)' -f $Me, $common))
    exit 1
}
. $common

# The Windows Firewall group of the allow rules this script adds.
$AllowGroup = 'farm-vip-allow'

# Get-VipFrames returns, for one VIP, the MACs and group the engine and
# the network use (the same derivation as filter/windivert/mac.go).
function Get-VipFrames([string]$Address) {
    $ip = [System.Net.IPAddress]::Parse($Address)
    $b = $ip.GetAddressBytes()
    if ($ip.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetwork) {
        return [pscustomobject]@{
            Vip      = $Address
            IPv6     = $false
            Unicast  = ('02-BF-{0:X2}-{1:X2}-{2:X2}-{3:X2}' -f $b[0], $b[1], $b[2], $b[3])
            Group    = ('239.255.{0}.{1}' -f $b[2], $b[3])
            GroupMac = ('01-00-5E-7F-{0:X2}-{1:X2}' -f $b[2], $b[3])
        }
    }
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $h = $sha.ComputeHash($b)
    return [pscustomobject]@{
        Vip      = $Address
        IPv6     = $true
        Unicast  = ('02-BE-{0:X2}-{1:X2}-{2:X2}-{3:X2}' -f $h[0], $h[1], $h[2], $h[3])
        Group    = ('ff12::6661:726d:{0:x}:{1:x}' -f ($b[12] * 256 + $b[13]), ($b[14] * 256 + $b[15]))
        GroupMac = ('33-33-{0:X2}-{1:X2}-{2:X2}-{3:X2}' -f $b[12], $b[13], $b[14], $b[15])
    }
}

# Get-Adapter returns the adapter with this alias, or throws saying how
# to make it.
function Get-Adapter([string]$Name, [string]$Hint) {
    $a = Get-NetAdapter -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $a) {
        throw ('adapter {0} not found (Get-NetAdapter lists them). {1}' -f $Name, $Hint)
    }
    return $a
}

# Set-WeakHost sets weak host receive (and send) on an adapter, for both
# address families where they are bound.
function Set-WeakHost([string]$Name, [string]$Receive, [string]$Send) {
    foreach ($family in @('IPv4', 'IPv6')) {
        $if = Get-NetIPInterface -InterfaceAlias $Name -AddressFamily $family -ErrorAction SilentlyContinue
        if ($null -eq $if) { continue }
        if ($Send -eq '') {
            Set-NetIPInterface -InterfaceAlias $Name -AddressFamily $family -WeakHostReceive $Receive
        } else {
            Set-NetIPInterface -InterfaceAlias $Name -AddressFamily $family -WeakHostReceive $Receive -WeakHostSend $Send
        }
    }
}

# Write-Network prints what the switch and the router need for one VIP.
function Write-Network($Frames, [string]$FrameMode) {
    if ($FrameMode -eq 'multicast') {
        Write-Say ('vip {0}: frames to {1} (group {2}; the engine joins it on {3} while it runs)' -f $Frames.Vip, $Frames.GroupMac, $Frames.Group, $Lan)
        if ($Frames.IPv6) {
            Write-Say ('  router: static neighbour entry {0} -> {1}; MLD snooping needs an MLD querier on the VLAN' -f $Frames.Vip, $Frames.GroupMac)
        } else {
            $cisco = ($Frames.GroupMac -replace '-', '').ToLower()
            Write-Say ('  router: static ARP entry {0} -> {1} (Cisco IOS: arp {0} {2}.{3}.{4} arpa)' -f $Frames.Vip, $Frames.GroupMac, $cisco.Substring(0, 4), $cisco.Substring(4, 4), $cisco.Substring(8, 4))
            Write-Say '  switch: IGMP snooping needs an IGMP querier on the VLAN (or a static group on the nodes ports, or snooping off)'
        }
    } else {
        Write-Say ('vip {0}: frames to {1}, the cluster NIC {2} of every node' -f $Frames.Vip, $Frames.Unicast, $Lan)
        Write-Say ('  router: static ARP or neighbour entry {0} -> {1}' -f $Frames.Vip, $Frames.Unicast)
        Write-Say '  switch: must flood that MAC to every node: it must never see it as a source (no node sends from its cluster NIC) or not learn MACs on this VLAN'
    }
}

try {
    if ($Mode -eq 'vmac') { $Mode = 'unicast' }
    # powershell.exe -File passes "-Vip a,b" as one string: split it here.
    $Vip = @($Vip | ForEach-Object { $_ -split ',' } | ForEach-Object { $_.Trim() } | Where-Object { $_ -ne '' })
    $frames = @($Vip | ForEach-Object { Get-VipFrames $_ })
    $loopHint = 'Install a Microsoft KM-TEST Loopback Adapter (hdwwiz.exe: Network adapters, Microsoft) and rename it: Rename-NetAdapter -Name "Ethernet 2" -NewName farm-vip'

    if ($Remove) {
        Get-NetFirewallRule -Group $AllowGroup -ErrorAction SilentlyContinue | Remove-NetFirewallRule
        if ($null -ne (Get-NetAdapter -Name $Lan -ErrorAction SilentlyContinue)) {
            Set-WeakHost $Lan 'Disabled' ''
            if ($Mode -eq 'unicast') {
                Reset-NetAdapterAdvancedProperty -Name $Lan -RegistryKeyword 'NetworkAddress' -ErrorAction SilentlyContinue
                Write-Say ('{0} has its own MAC again' -f $Lan)
            }
        }
        if ($null -ne (Get-NetAdapter -Name $VipAdapter -ErrorAction SilentlyContinue)) {
            Set-WeakHost $VipAdapter 'Disabled' 'Disabled'
        }
        Write-Say 'weak host settings removed; the VIP adapter is left installed (remove it in Device Manager)'
        exit 0
    }

    $vipIf = Get-Adapter $VipAdapter $loopHint
    if ($vipIf.InterfaceDescription -notlike '*Loopback*') {
        Write-Say ('warning: {0} is "{1}", not a loopback adapter: Windows would answer ARP for the VIPs on its link' -f $VipAdapter, $vipIf.InterfaceDescription)
    }
    [void](Get-Adapter $Lan 'Give the [[vip]] interface of the config.')

    # The VIP adapter: weak host send and receive, no DAD (the same
    # address is on every node), no DHCP, not registered in DNS.
    Set-WeakHost $VipAdapter 'Enabled' 'Enabled'
    foreach ($family in @('IPv4', 'IPv6')) {
        if ($null -ne (Get-NetIPInterface -InterfaceAlias $VipAdapter -AddressFamily $family -ErrorAction SilentlyContinue)) {
            Set-NetIPInterface -InterfaceAlias $VipAdapter -AddressFamily $family -DadTransmits 0 -Dhcp Disabled
        }
    }
    Set-DnsClient -InterfaceAlias $VipAdapter -RegisterThisConnectionsAddress $false
    # The LAN adapter: accept packets for the VIP adapter's addresses.
    Set-WeakHost $Lan 'Enabled' ''
    Write-Say ('weak host receive on {0}; weak host send and receive on {1}' -f $Lan, $VipAdapter)

    if ($Mode -eq 'unicast') {
        $first = @($frames | Where-Object { -not $_.IPv6 }) + @($frames | Where-Object { $_.IPv6 })
        $mac = $first[0].Unicast
        Set-NetAdapterAdvancedProperty -Name $Lan -RegistryKeyword 'NetworkAddress' -RegistryValue ($mac -replace '-', '')
        Write-Say ('{0} now has the MAC {1} (the adapter restarts)' -f $Lan, $mac)
        if (@($frames).Count -gt 1) {
            Write-Say ('warning: one NIC has one MAC: point every VIP of this NIC at {0} in the router, or give each VIP a cluster NIC of its own' -f $mac)
        }
        $gw = @(Get-NetRoute -InterfaceAlias $Lan -ErrorAction SilentlyContinue | Where-Object { $_.DestinationPrefix -eq '0.0.0.0/0' -or $_.DestinationPrefix -eq '::/0' })
        if ($gw.Count -gt 0) {
            Write-Say ('warning: {0} has a default route: replies would leave through it with the shared MAC as source; move the default gateway to the other NIC' -f $Lan)
        }
        foreach ($family in @('IPv4', 'IPv6')) {
            if ($null -ne (Get-NetIPInterface -InterfaceAlias $Lan -AddressFamily $family -ErrorAction SilentlyContinue)) {
                Set-NetIPInterface -InterfaceAlias $Lan -AddressFamily $family -DadTransmits 0
            }
        }
    }

    $addrs = @($frames | ForEach-Object { $_.Vip })
    Get-NetFirewallRule -Group $AllowGroup -ErrorAction SilentlyContinue | Remove-NetFirewallRule
    foreach ($rule in @(@('TCP', $AllowTcp), @('UDP', $AllowUdp))) {
        if ($rule[1] -eq '') { continue }
        $ports = @($rule[1] -split ',' | ForEach-Object { $_.Trim() })
        New-NetFirewallRule -Name ('{0}-{1}' -f $AllowGroup, $rule[0].ToLower()) -DisplayName ('farm VIP ({0})' -f $rule[0]) -Group $AllowGroup -Direction Inbound -Action Allow -Protocol $rule[0] -LocalAddress $addrs -LocalPort $ports | Out-Null
        Write-Say ('firewall allows {0} {1} to the VIPs' -f $rule[0], ($ports -join ','))
    }

    foreach ($f in $frames) {
        Write-Network $f $Mode
    }
    Write-Say ('done: set the config [[vip]] interface = "{0}", mode = "{1}"' -f $Lan, $(if ($Mode -eq 'unicast') { 'vmac' } else { 'multicast' }))
    exit 0
} catch {
    [Console]::Error.WriteLine(('{0}: {1}' -f $Me, $_.Exception.Message))
    exit 1
}
