# What start.ps1, stop.ps1 and recycle.ps1 share, dot-sourced by each from
# its own folder after it has set $Me (its name, for messages),
# Set-StrictMode and $ErrorActionPreference; not run on its own. Keep it next
# to them: copy the whole folder.

# Write-Say writes one line of progress, prefixed with the script's name, to
# standard output, which the agent logs.
function Write-Say([string]$Message) {
    Write-Output ('{0}: {1}' -f $script:Me, $Message)
}

# Get-Seconds returns Given when it is set (> 0), else the environment
# variable EnvName, else Default.
function Get-Seconds([int]$Given, [string]$EnvName, [int]$Default) {
    if ($Given -gt 0) { return $Given }
    $v = [Environment]::GetEnvironmentVariable($EnvName)
    if ([string]::IsNullOrEmpty($v)) { return $Default }
    $n = 0
    if (-not [int]::TryParse($v, [ref]$n) -or $n -le 0) {
        throw ('{0}={1}: want a whole number of seconds' -f $EnvName, $v)
    }
    return $n
}

# Get-StartType returns the service's start type (Automatic, Manual,
# Disabled...), or $null where .NET is too old to say.
function Get-StartType($Service) {
    if ($Service.PSObject.Properties['StartType']) { return [string]$Service.StartType }
    return $null
}

# Wait-Status waits up to Seconds for the service to reach Status and says
# whether it did.
function Wait-Status($Service, [string]$Status, [int]$Seconds) {
    try {
        $Service.WaitForStatus($Status, [TimeSpan]::FromSeconds($Seconds))
    } catch {
        # A timeout: the status check below reports it.
    }
    $Service.Refresh()
    return ($Service.Status -eq $Status)
}

# Start-IisService starts the service (the SCM starts what it depends on)
# unless it runs, and waits up to Seconds until it runs.
function Start-IisService([string]$Name, [int]$Seconds) {
    $svc = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $svc) {
        throw ('service {0} is not installed (install IIS: Install-WindowsFeature Web-Server)' -f $Name)
    }
    if ((Get-StartType $svc) -eq 'Disabled') {
        throw ('service {0} is disabled (Set-Service -Name {0} -StartupType Automatic)' -f $Name)
    }
    if ($svc.Status -eq 'Running') { return }
    if ($svc.Status -eq 'StopPending') { [void](Wait-Status $svc 'Stopped' $Seconds) }
    if ($svc.Status -eq 'Paused') {
        $svc.Continue()
    } elseif ($svc.Status -eq 'Stopped') {
        $svc.Start()
    }
    # StartPending and ContinuePending are on their way already.
    if (-not (Wait-Status $svc 'Running' $Seconds)) {
        throw ('service {0} is {1} after {2}s, not Running (the System event log says why)' -f $Name, $svc.Status, $Seconds)
    }
}
