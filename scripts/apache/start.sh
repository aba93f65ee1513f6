#!/bin/sh
# farm [app] start script for Apache httpd (apache2): starts it unless it
# already runs.
#
# Exit 0 when Apache runs, whether it already did or this script started it;
# exit 1 when the configuration test fails (Apache is then left alone, so a
# bad edit never takes a running node down) or Apache does not come up.
# Settings are environment variables, all optional: see README.md.
set -eu

me=apache/start.sh

# common.sh, next to this script, holds what start.sh and stop.sh share.
common=$(dirname -- "$0")/common.sh
[ -r "$common" ] || { printf '%s: %s\n' "$me" "$common is missing: copy the whole folder (see README.md)" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$common"

[ $# -eq 0 ] || die "usage: start.sh (no arguments; settings come from the environment, see README.md)"
limit=$(seconds APACHE_START_WAIT "${APACHE_START_WAIT:-10}")

if pid=$(master); then
	say "$name already runs (master pid $pid, pid file $pidf)"
	exit 0
fi
systemd=no
if use_systemd; then systemd=yes; fi
if [ "$systemd" = yes ] && systemctl is-active --quiet -- "$unit"; then
	say "$unit is already active"
	exit 0
fi

# Test the configuration first: starting with a broken one would fail anyway,
# and configtest says exactly where the error is.
if ! out=$("$ctl" configtest 2>&1); then
	printf '%s\n' "$out" >&2
	die "configuration test failed ($ctl configtest, output above); $name was not started"
fi

if [ "$systemd" = yes ]; then
	# A unit that failed too often refuses to start until reset.
	systemctl reset-failed -- "$unit" >/dev/null 2>&1 || true
	systemctl start -- "$unit" || die "systemctl start $unit failed (systemctl status $unit says why)"
	systemctl is-active --quiet -- "$unit" || die "$unit is not active after systemctl start (systemctl status $unit says why)"
	say "$unit started"
	exit 0
fi

# Apache daemonizes; its output goes to a file, not to the agent's pipe, so
# a daemon that keeps a copy of it open cannot hold the agent.
# APACHE_STARTED_BY_SYSTEMD keeps Debian's apache2ctl from handing the start
# to systemctl: this is the direct way, chosen by APACHE_SYSTEMD or auto.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
	# On a systemd host Apache would otherwise stay in farm.service's cgroup
	# and die with the agent (KillMode=mixed): give it a scope of its own.
	set -- systemd-run --scope --quiet --collect --description="$name started by farm" --
fi
if ! APACHE_STARTED_BY_SYSTEMD=true "$@" "$ctl" start <"/dev/null" >"$log" 2>&1; then
	cat "$log" >&2
	die "$name did not start (output above; see also its error log)"
fi
cat "$log"

# The master writes its pid file once it has daemonized.
i=0
while ! pid=$(master); do
	i=$((i + 1))
	[ "$i" -le $((limit * 5)) ] || die "$name started but no live master is in $pidf after ${limit}s (see its error log; APACHE_PID must match PidFile)"
	sleep 0.2
done
say "$name started (master pid $pid)"
