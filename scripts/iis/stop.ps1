<#
.SYNOPSIS
    farm [app] stop script for IIS: stops W3SVC gracefully, or stops W3SVC
    and WAS forcibly.

.DESCRIPTION
    stop.ps1        Stops W3SVC (the web sites) and waits for it. Exit 1 if
                    it is not stopped after the wait; the agent then runs
                    "stop.ps1 force".
    stop.ps1 force  Kills every IIS worker process (w3wp.exe), stops W3SVC
                    and WAS, and if one of them does not stop in time kills
                    the svchost.exe that hosts it, but only when that process
                    hosts nothing but W3SVC and WAS. Exit 0 once both are
                    stopped and no w3wp.exe is left.
    Exit 0 when IIS does not run, also when it did not run to begin with.

.PARAMETER Mode
    "force" for the forced stop; the agent passes it as the first argument.

.PARAMETER TimeoutSeconds
    How long to wait for a service to stop. Default: the environment variable
    IIS_STOP_WAIT, else 30.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File stop.ps1 force
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('force')]
    [string]$Mode,
    [int]$TimeoutSeconds = 0
)

$Me = 'iis/stop.ps1'

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# common.ps1, next to this script, holds what start.ps1, stop.ps1 and
# recycle.ps1 share.
$common = Join-Path $PSScriptRoot 'common.ps1'
if (-not (Test-Path -LiteralPath $common)) {
    [Console]::Error.WriteLine(('{0}: {1} is missing: copy the whole folder (see README.md)' -f $Me, $common))
    exit 1
}
. $common

# Stop-Worker kills every w3wp.exe and waits up to Seconds until none is left.
function Stop-Worker([int]$Seconds) {
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ($true) {
        $left = @(Get-Process -Name 'w3wp' -ErrorAction SilentlyContinue)
        if ($left.Count -eq 0) { return }
        if ((Get-Date) -ge $deadline) {
            throw ('w3wp.exe still runs (pids {0})' -f (($left | ForEach-Object { $_.Id }) -join ', '))
        }
        $left | Stop-Process -Force -ErrorAction SilentlyContinue
        Start-Sleep -Milliseconds 250
    }
}

# Stop-ServiceHost kills the process that hosts the service, but only when it
# hosts nothing but W3SVC and WAS: killing a shared svchost.exe would take
# unrelated services down.
function Stop-ServiceHost([string]$Name) {
    $cim = Get-CimInstance -ClassName 'Win32_Service' -Filter ("Name='{0}'" -f $Name)
    if ($null -eq $cim) { return }
    $hostId = [int]$cim.ProcessId
    if ($hostId -eq 0) { return }
    $others = @(Get-CimInstance -ClassName 'Win32_Service' -Filter ('ProcessId={0}' -f $hostId) |
            Where-Object { $_.Name -notin @('W3SVC', 'WAS') } |
            ForEach-Object { $_.Name })
    if ($others.Count -gt 0) {
        throw ('service {0} does not stop and its process {1} also hosts {2}: not killed, stop it by hand' -f $Name, $hostId, ($others -join ', '))
    }
    Write-Say ('killing process {0}, the host of {1}' -f $hostId, $Name)
    Stop-Process -Id $hostId -Force
}

try {
    $seconds = Get-Seconds $TimeoutSeconds 'IIS_STOP_WAIT' 30

    if ($Mode -ne 'force') {
        $w3 = Get-Service -Name 'W3SVC' -ErrorAction SilentlyContinue
        if ($null -eq $w3 -or $w3.Status -eq 'Stopped') {
            Write-Say 'W3SVC is not running'
            exit 0
        }
        if ($w3.Status -ne 'StopPending') { $w3.Stop() }
        if (-not (Wait-Status $w3 'Stopped' $seconds)) {
            throw ('W3SVC is {0} after {1}s, not Stopped; stop.ps1 force kills it' -f $w3.Status, $seconds)
        }
        Write-Say 'W3SVC stopped'
        exit 0
    }

    # Workers first: they are what holds a stop up.
    Stop-Worker 10
    foreach ($name in @('W3SVC', 'WAS')) {
        $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
        if ($null -eq $svc -or $svc.Status -eq 'Stopped') { continue }
        if ($svc.Status -ne 'StopPending') {
            try {
                # Stops the services that depend on it first.
                $svc.Stop()
            } catch {
                Write-Say ('warning: stopping {0}: {1}' -f $name, $_.Exception.Message)
            }
        }
        if (Wait-Status $svc 'Stopped' $seconds) { continue }
        Stop-ServiceHost $name
        if (-not (Wait-Status $svc 'Stopped' 10)) {
            throw ('service {0} is {1} even after its process was killed' -f $name, $svc.Status)
        }
    }
    # WAS may have started a worker before it stopped.
    Stop-Worker 10
    Write-Say 'W3SVC and WAS stopped, no w3wp.exe left'
    exit 0
} catch {
    [Console]::Error.WriteLine(('{0}: {1}' -f $Me, $_.Exception.Message))
    exit 1
}
