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

# --- common: keep identical in start.sh and stop.sh (scripts_test.go checks) ---
PATH=${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin
export PATH

say() { printf '%s: %s\n' "$me" "$*"; }
die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}

# seconds NAME VALUE prints VALUE after checking that it is a whole number of
# seconds; NAME is the setting it came from, for the error.
seconds() {
	case $2 in
	'' | *[!0-9]*) die "$1=$2: want a whole number of seconds" ;;
	esac
	printf '%s\n' "$2"
}

# Debian names it apache2ctl and the server apache2; Red Hat apachectl and httpd.
if [ -n "${APACHE_CTL:-}" ]; then
	ctl=$(command -v "$APACHE_CTL") || die "no $APACHE_CTL in PATH (check APACHE_CTL)"
else
	ctl=$(command -v apache2ctl || command -v apachectl) || die "neither apache2ctl nor apachectl is in PATH (install apache2 or set APACHE_CTL)"
fi
case $(basename "$ctl") in
apache2ctl*) name=${APACHE_NAME:-apache2} ;;
*) name=${APACHE_NAME:-httpd} ;;
esac
# The kernel's process name (comm) is 15 bytes at most.
name=$(printf '%s' "$name" | cut -c1-15)
unit=${APACHE_UNIT:-$name.service}

# pidfile prints the pid file of this instance: APACHE_PID, else the
# configuration's PidFile (apache2ctl -t -D DUMP_RUN_CFG), else the
# distribution's default.
pidfile() {
	_f=${APACHE_PID:-}
	if [ -z "$_f" ]; then
		_f=$("$ctl" -t -D DUMP_RUN_CFG 2>/dev/null | sed -n 's/^PidFile:[[:space:]]*"\(.*\)"[[:space:]]*$/\1/p' | head -n 1)
	fi
	if [ -z "$_f" ]; then
		case $name in
		httpd) _f=/run/httpd/httpd.pid ;;
		*) _f=/run/apache2/apache2.pid ;;
		esac
	fi
	printf '%s\n' "$_f"
}

# readstat PID sets s_comm, s_state, s_ppid, s_pgrp and s_sess from
# /proc/PID/stat; it fails when PID does not exist. No fork: the force path
# reads every process.
readstat() {
	{ IFS= read -r _s <"/proc/$1/stat"; } 2>/dev/null || return 1
	s_comm=${_s#*\(}
	s_comm=${s_comm%\)*}
	# shellcheck disable=SC2034 # s_ppid, s_pgrp and s_sess serve stop.sh's force path.
	read -r s_state s_ppid s_pgrp s_sess _ <<EOF
${_s##*\) }
EOF
}

# alive PID succeeds when PID is a live (not zombie) process named like the
# server, so a pid file naming a dead or reused pid does not count.
alive() {
	readstat "$1" && [ "$s_comm" = "$name" ] && [ "$s_state" != Z ]
}

# master prints the pid in the pid file when it is a live server.
master() {
	_m=$(cat "$pidf" 2>/dev/null) || return 1
	case $_m in
	'' | *[!0-9]*) return 1 ;;
	esac
	alive "$_m" || return 1
	printf '%s\n' "$_m"
}

# use_systemd succeeds when Apache is managed through systemctl:
# APACHE_SYSTEMD yes, or auto (the default) on a host booted with systemd
# that knows the unit.
use_systemd() {
	case ${APACHE_SYSTEMD:-auto} in
	yes) return 0 ;;
	no) return 1 ;;
	auto)
		[ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
			systemctl cat -- "$unit" >/dev/null 2>&1
		;;
	*) die "APACHE_SYSTEMD=$APACHE_SYSTEMD: want auto, yes or no" ;;
	esac
}

pidf=$(pidfile)
# --- end common ---

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
