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

# common.sh, next to this script, holds what start.sh and stop.sh share.
common=$(dirname -- "$0")/common.sh
[ -r "$common" ] || { printf '%s: %s\n' "$me" "$common is missing: copy the whole folder (see README.md)" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$common"

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
