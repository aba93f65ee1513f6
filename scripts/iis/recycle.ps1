<#
.SYNOPSIS
    Recycles one IIS application pool (starts it if it is stopped), after
    making sure WAS and W3SVC run.

.DESCRIPTION
    A recycle starts a new worker process for the pool and lets the old one
    finish its requests: a lighter repair than restarting IIS. Because it
    first starts WAS and W3SVC when they are stopped, it can serve as the
    [app] start script (see README.md). Uses the WebAdministration module
    when it is installed, else %windir%\System32\inetsrv\appcmd.exe.
    Exit 0 once the pool is Started; exit 1 otherwise.

.PARAMETER Name
    The application pool. Default: the environment variable FARM_APPPOOL.

.PARAMETER TimeoutSeconds
    How long to wait for the services and for the pool. Default: the
    environment variable IIS_START_WAIT, else 45.

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File recycle.ps1 -Name DefaultAppPool
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [string]$Name,
    [int]$TimeoutSeconds = 0
)

$Me = 'iis/recycle.ps1'

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

# Invoke-AppCmd runs appcmd.exe and returns its output lines; it throws when
# appcmd fails. Native errors must not stop the script before the exit code
# is read, hence the local ErrorActionPreference.
function Invoke-AppCmd([string[]]$Arguments) {
    $appcmd = Join-Path $env:windir 'System32\inetsrv\appcmd.exe'
    if (-not (Test-Path -LiteralPath $appcmd)) {
        throw ('neither the WebAdministration module nor {0} is installed (install IIS management tools: Install-WindowsFeature Web-Mgmt-Tools)' -f $appcmd)
    }
    $eap = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $out = @(& $appcmd @Arguments 2>&1 | ForEach-Object { [string]$_ })
        $code = $LASTEXITCODE
    } finally {
        $ErrorActionPreference = $eap
    }
    if ($code -ne 0) {
        throw ('appcmd {0} exited with {1}: {2}' -f ($Arguments -join ' '), $code, ($out -join ' '))
    }
    return $out
}

# Get-PoolState returns Started, Starting, Stopped or Stopping, or '' when
# there is no such pool.
function Get-PoolState([string]$Pool) {
    if ($script:UseModule) {
        if (-not (Test-Path -LiteralPath ('IIS:\AppPools\' + $Pool))) { return '' }
        return [string](Get-WebAppPoolState -Name $Pool).Value
    }
    $lines = @(Invoke-AppCmd @('list', 'apppool', $Pool, '/text:state'))
    return ($lines -join '').Trim()
}

# Wait-PoolState waits up to Seconds for the pool to reach State and says
# whether it did.
function Wait-PoolState([string]$Pool, [string]$State, [int]$Seconds) {
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ((Get-PoolState $Pool) -ne $State) {
        if ((Get-Date) -ge $deadline) { return $false }
        Start-Sleep -Milliseconds 250
    }
    return $true
}

try {
    if ([string]::IsNullOrEmpty($Name)) { $Name = [Environment]::GetEnvironmentVariable('FARM_APPPOOL') }
    if ([string]::IsNullOrEmpty($Name)) {
        throw 'no application pool named: pass -Name POOL or set FARM_APPPOOL'
    }
    if ($Name -eq 'force') {
        throw 'recycle.ps1 is not a stop script (it got "force"): use stop.ps1 as [app] stop'
    }
    $seconds = Get-Seconds $TimeoutSeconds 'IIS_START_WAIT' 45

    foreach ($svc in @('WAS', 'W3SVC')) {
        Start-IisService $svc $seconds
    }

    $script:UseModule = $false
    if (Get-Module -ListAvailable -Name 'WebAdministration') {
        Import-Module -Name 'WebAdministration'
        $script:UseModule = $true
    }

    $state = Get-PoolState $Name
    if ($state -eq '') {
        throw ('there is no application pool "{0}" (Get-IISAppPool or appcmd list apppool lists them)' -f $Name)
    }
    if ($state -eq 'Stopping') {
        [void](Wait-PoolState $Name 'Stopped' $seconds)
        $state = Get-PoolState $Name
    }
    switch ($state) {
        'Started' {
            if ($script:UseModule) { Restart-WebAppPool -Name $Name } else { [void](Invoke-AppCmd @('recycle', 'apppool', ('/apppool.name:' + $Name))) }
            $did = 'recycled'
        }
        'Stopped' {
            if ($script:UseModule) { Start-WebAppPool -Name $Name } else { [void](Invoke-AppCmd @('start', 'apppool', ('/apppool.name:' + $Name))) }
            $did = 'started'
        }
        default {
            # Starting: on its way already.
            $did = 'found starting'
        }
    }
    if (-not (Wait-PoolState $Name 'Started' $seconds)) {
        throw ('application pool "{0}" is {1} after {2}s, not Started (the System event log says why)' -f $Name, (Get-PoolState $Name), $seconds)
    }
    Write-Say ('application pool "{0}" {1}; it is Started' -f $Name, $did)
    exit 0
} catch {
    [Console]::Error.WriteLine(('{0}: {1}' -f $Me, $_.Exception.Message))
    exit 1
}
