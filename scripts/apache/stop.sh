#!/bin/sh
# farm [app] stop script for Apache httpd (apache2): stops it gracefully, or
# kills it.
#
#   stop.sh        graceful: systemctl stop (when systemd manages Apache),
#                  then SIGWINCH to the master (what `apache2ctl graceful-stop`
#                  sends): open requests finish. Exit 1 if Apache still runs
#                  after APACHE_STOP_WAIT seconds; the agent then runs
#                  "stop.sh force".
#   stop.sh force  SIGKILL to the master and its children (found by the pid
#                  file), then to every other process of this Apache (found
#                  by name); exit 0 once none is left.
#
# Exit 0 when Apache does not run, also when it did not run to begin with.
# Settings are environment variables, all optional: see README.md.
set -eu

me=apache/stop.sh

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

force=no
case $# in
0) ;;
1)
	[ "$1" = force ] || die "usage: stop.sh [force] (got \"$1\")"
	force=yes
	;;
*) die "usage: stop.sh [force]" ;;
esac
limit=$(seconds APACHE_STOP_WAIT "${APACHE_STOP_WAIT:-20}")
# APACHE_CONFDIR (Debian: /etc/apache2-NAME for a second instance) is read by
# apache2ctl itself; here it narrows the force path to that instance.
scope=${APACHE_CONFDIR:-}

# await N PID... succeeds once none of the PIDs is a live process (a zombie
# counts as gone), polling for at most N seconds.
await() {
	_n=$(($1 * 5))
	shift
	while :; do
		_left=no
		for _p in "$@"; do
			if readstat "$_p" && [ "$s_state" != Z ]; then _left=yes; fi
		done
		[ "$_left" = yes ] || return 0
		[ "$_n" -gt 0 ] || return 1
		_n=$((_n - 1))
		sleep 0.2
	done
}

# leaders prints, space-separated, the processes of this instance found by
# name: those whose command line names APACHE_CONFDIR (apache2ctl passes it
# as -d). Without APACHE_CONFDIR every process named like the server counts
# as this instance anyway.
leaders() {
	for _d in /proc/[0-9]*; do
		_p=${_d#/proc/}
		alive "$_p" || continue
		_cmd=$(tr '\000' ' ' <"$_d/cmdline" 2>/dev/null) || continue
		case $_cmd in
		*"$scope"*) printf '%s ' "$_p" ;;
		esac
	done
}

# victims prints the pids to kill: the pid-file master, its children and the
# members of its session and process group (Apache calls setsid when it
# daemonizes), whatever their name (CGI scripts) when that master is alive;
# processes named like the server that belong to this instance or, without
# APACHE_CONFDIR, every process named like the server.
victims() {
	_m=$(cat "$pidf" 2>/dev/null) || _m=""
	case $_m in
	'' | *[!0-9]* | 0 | 1) _m="" ;;
	esac
	_live=no
	if [ -n "$_m" ] && alive "$_m"; then _live=yes; fi
	_lead=" "
	if [ -n "$scope" ]; then _lead=" $(leaders)"; fi
	for _d in /proc/[0-9]*; do
		_p=${_d#/proc/}
		if [ "$_p" = 1 ] || [ "$_p" = "$$" ]; then continue; fi
		readstat "$_p" || continue
		[ "$s_state" != Z ] || continue
		_family=no
		if [ -n "$_m" ]; then
			for _x in "$_p" "$s_ppid" "$s_pgrp" "$s_sess"; do
				if [ "$_x" = "$_m" ]; then _family=yes; fi
			done
		fi
		if [ "$_family" = yes ] && [ "$_live" = yes ]; then
			printf '%s ' "$_p"
			continue
		fi
		[ "$s_comm" = "$name" ] || continue
		if [ "$_family" = yes ] || [ -z "$scope" ]; then
			printf '%s ' "$_p"
			continue
		fi
		for _x in "$_p" "$s_ppid" "$s_pgrp" "$s_sess"; do
			case $_lead in
			*" $_x "*)
				printf '%s ' "$_p"
				break
				;;
			esac
		done
	done
}

if [ "$force" = no ]; then
	via=""
	if use_systemd; then
		systemctl stop -- "$unit" || die "systemctl stop $unit failed (systemctl status $unit says why); stop.sh force kills it"
		via=" after systemctl stop $unit"
	fi
	if ! pid=$(master); then
		# A master killed alone leaves its children serving the port.
		left=$(victims)
		left=${left% }
		[ -z "$left" ] || die "no live master in $pidf, but processes of this instance remain (pids $left); stop.sh force kills them"
		say "$name is not running$via (no live master in $pidf)"
		exit 0
	fi
	kill -WINCH "$pid" 2>/dev/null || true
	if await "$limit" "$pid"; then
		say "$name stopped (master pid $pid)"
		exit 0
	fi
	die "$name (master pid $pid) still runs ${limit}s after SIGWINCH (long requests?); stop.sh force kills it"
fi

if use_systemd; then
	# systemd kills every process of the unit's cgroup.
	systemctl kill --signal=SIGKILL -- "$unit" >/dev/null 2>&1 || true
fi
killed=""
round=0
while :; do
	list=$(victims)
	list=${list% }
	[ -n "$list" ] || break
	round=$((round + 1))
	[ "$round" -le 5 ] || die "$name processes still run after 5 rounds of SIGKILL: $list"
	# shellcheck disable=SC2086 # $list is a list of pids.
	kill -KILL $list 2>/dev/null || true
	killed="${killed:+$killed }$list"
	# shellcheck disable=SC2086
	await 5 $list || true
done
# Apache leaves its pid file behind when it is killed, and then refuses to
# start on some versions until it is removed.
if [ -f "$pidf" ] && ! master >/dev/null; then rm -f "$pidf"; fi
if [ -n "$killed" ]; then
	say "$name killed (pids $killed)"
else
	say "$name is not running"
fi
