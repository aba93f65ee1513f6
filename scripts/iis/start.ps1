<#
.SYNOPSIS
    farm [app] start script for IIS: starts WAS and W3SVC and waits until
    both run.

.DESCRIPTION
    Exit 0 when both services run, whether they already did or this script
    started them; exit 1 when one is missing, disabled, or not running after
    the wait. Services that depend on WAS and start automatically (the
    net.tcp, net.pipe and MSMQ listener adapters) are started too, since
    "stop.ps1 force" stops them along with WAS.

.PARAMETER TimeoutSeconds
    How long to wait for each service. Default: the environment variable
    IIS_START_WAIT, else 45 (under the agent's default [app] timeout of 60s).

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File start.ps1
#>
[CmdletBinding()]
param(
    [int]$TimeoutSeconds = 0
)

$Me = 'iis/start.ps1'

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

try {
    $seconds = Get-Seconds $TimeoutSeconds 'IIS_START_WAIT' 45
    foreach ($name in @('WAS', 'W3SVC')) {
        Start-IisService $name $seconds
    }
    $was = Get-Service -Name 'WAS'
    foreach ($dep in @($was.DependentServices)) {
        if ($dep.Status -ne 'Stopped' -or (Get-StartType $dep) -ne 'Automatic') { continue }
        try {
            Start-IisService $dep.Name $seconds
        } catch {
            # Not fatal: the web site runs without them.
            Write-Say ('warning: {0}' -f $_.Exception.Message)
        }
    }
    Write-Say 'WAS and W3SVC are running'
    exit 0
} catch {
    [Console]::Error.WriteLine(('{0}: {1}' -f $Me, $_.Exception.Message))
    exit 1
}
