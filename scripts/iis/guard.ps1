<#
.SYNOPSIS
    farm: the WinDivert engine's guards on this node: shows them, or
    releases what a dead agent left (farm cleanup, for Windows nodes).

.DESCRIPTION
    While it runs, the agent's WinDivert engine keeps a duplicate of its
    filter handle in a suspended farm.exe, the crash guard: if the agent
    dies, the filter stays and drops every packet to the VIPs' balanced
    ports, so the node answers nobody (and resets no other node's
    connection) until an agent is back, which adopts the handle. The
    engine records the guard, the VIP addresses it added and whether it
    installed the firewall guard rules in STATE_DIR\windivert-guard.json.

    status (the default) prints the record and what of it is still there;
    exit 0.

    release removes what a dead agent left, in the order that never lets
    the TCP stack answer for a VIP: the VIP addresses first, then the
    crash guard process, then the firewall guard rules (group
    farm-windivert-guard) and the record. Use it when no agent will come
    back on this node (uninstall, or taking the node out by hand). Do not
    make it the service's recovery action: a restarted agent adopts the
    guard and carries on without a gap. It refuses while the service runs.

    Exit 1 when something could not be removed (run it again; the node
    keeps dropping the VIPs' traffic meanwhile).

.PARAMETER Action
    status or release (first argument).

.PARAMETER StateDir
    The agent's state_dir. Default: the environment variable
    FARM_STATE_DIR, else C:\ProgramData\farm.

.PARAMETER Service
    The agent's service name (default farm), which must be stopped for
    release.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File guard.ps1 release -StateDir C:\farm\state
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('status', 'release')]
    [string]$Action = 'status',
    [string]$StateDir = '',
    [string]$Service = 'farm'
)

$Me = 'iis/guard.ps1'

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# common.ps1, next to this script, holds what the IIS scripts share.
$common = Join-Path $PSScriptRoot 'common.ps1'
if (-not (Test-Path -LiteralPath $common)) {
    [Console]::Error.WriteLine(('{0}: {1} is missing: copy the whole folder (see README.md)' -f $Me, $common))
    exit 1
}
. $common

# The names the engine uses (filter/windivert/guard.go).
$GuardFile = 'windivert-guard.json'
$FirewallGroup = 'farm-windivert-guard'
$GuardArg = 'windivert-crash-guard-do-not-resume'

# Get-GuardProcess returns the recorded crash guard process if it still
# runs; a PID can be reused, so its creation time must match the record.
function Get-GuardProcess($Record) {
    $p = Get-Process -Id ([int]$Record.pid) -ErrorAction SilentlyContinue
    if ($null -eq $p) { return $null }
    try {
        $created = [uint64]$p.StartTime.ToFileTimeUtc()
    } catch {
        return $null
    }
    if ($created -ne [uint64]$Record.created) { return $null }
    return $p
}

# Get-StrayGuards returns crash guard processes no record names.
function Get-StrayGuards($Known) {
    $filter = "Name = 'farm.exe' AND CommandLine LIKE '%{0}%'" -f $GuardArg
    return @(Get-CimInstance -ClassName Win32_Process -Filter $filter -ErrorAction SilentlyContinue |
        Where-Object { $null -eq $Known -or $_.ProcessId -ne $Known.Id })
}

# Test-Vip says whether the adapter holds the address.
function Test-Vip([string]$Adapter, [string]$Address) {
    return ($null -ne (Get-NetIPAddress -InterfaceAlias $Adapter -IPAddress $Address -ErrorAction SilentlyContinue))
}

try {
    if ($StateDir -eq '') {
        $StateDir = [Environment]::GetEnvironmentVariable('FARM_STATE_DIR')
        if ([string]::IsNullOrEmpty($StateDir)) { $StateDir = 'C:\ProgramData\farm' }
    }
    $path = Join-Path $StateDir $GuardFile
    $record = $null
    if (Test-Path -LiteralPath $path) {
        $record = Get-Content -LiteralPath $path -Raw | ConvertFrom-Json
    }
    $guard = $null
    if ($null -ne $record) { $guard = Get-GuardProcess $record }
    $strays = Get-StrayGuards $guard

    if ($Action -eq 'status') {
        if ($null -eq $record) {
            Write-Say ('no crash guard record ({0}): no engine ran here, or it stopped cleanly' -f $path)
        } else {
            $state = 'gone'
            if ($null -ne $guard) { $state = 'running: the filter drops the VIPs traffic' }
            Write-Say ('crash guard process {0}: {1}' -f $record.pid, $state)
            Write-Say ('filter: {0} (priority {1})' -f $record.filter, $record.priority)
            foreach ($v in @($record.vips)) {
                $held = 'absent'
                if (Test-Vip $record.adapter $v) { $held = 'present' }
                Write-Say ('vip {0} on {1}: {2}' -f $v, $record.adapter, $held)
            }
        }
        $rules = @(Get-NetFirewallRule -Group $FirewallGroup -ErrorAction SilentlyContinue)
        Write-Say ('firewall guard rules: {0}' -f $rules.Count)
        foreach ($s in $strays) {
            Write-Say ('warning: crash guard process {0} is in no record (release ends it)' -f $s.ProcessId)
        }
        exit 0
    }

    $svc = Get-Service -Name $Service -ErrorAction SilentlyContinue
    if ($null -ne $svc -and $svc.Status -ne 'Stopped') {
        throw ('service {0} is {1}: stop it first (Stop-Service {0}); a running agent removes its guards itself' -f $Service, $svc.Status)
    }
    if ($null -ne $record) {
        # The VIPs first: once no adapter holds them, nothing for them is
        # local, so the filter can go without the stack answering.
        foreach ($v in @($record.vips)) {
            if (Test-Vip $record.adapter $v) {
                Remove-NetIPAddress -InterfaceAlias $record.adapter -IPAddress $v -Confirm:$false
            }
            if (Test-Vip $record.adapter $v) {
                throw ('vip {0} is still on {1}: the crash guard stays' -f $v, $record.adapter)
            }
            Write-Say ('vip {0} removed from {1}' -f $v, $record.adapter)
        }
        if ($null -ne $guard) {
            Stop-Process -Id $guard.Id -Force
            [void]$guard.WaitForExit(5000)
            Write-Say ('crash guard process {0} ended: the filter is gone' -f $guard.Id)
        }
    }
    foreach ($s in $strays) {
        if ($null -eq $record) {
            Write-Say ('warning: crash guard process {0} is in no record; ending it (its VIPs are unknown: check Get-NetIPAddress)' -f $s.ProcessId)
        }
        Stop-Process -Id $s.ProcessId -Force
    }
    Get-NetFirewallRule -Group $FirewallGroup -ErrorAction SilentlyContinue | Remove-NetFirewallRule
    if ($null -ne $record) {
        Remove-Item -LiteralPath $path
    }
    Write-Say 'released'
    exit 0
} catch {
    [Console]::Error.WriteLine(('{0}: {1}' -f $Me, $_.Exception.Message))
    exit 1
}
