#!/bin/sh
# farm [app] stop script for nginx: stops nginx gracefully, or kills it.
#
#   stop.sh        graceful: systemctl stop (when systemd manages nginx), then
#                  SIGQUIT to the master (what `nginx -s quit` sends): open
#                  requests finish. Exit 1 if nginx still runs after
#                  NGINX_STOP_WAIT seconds; the agent then runs "stop.sh force".
#   stop.sh force  SIGKILL to the master and its workers (found by the pid
#                  file), then to every other process of this nginx (found by
#                  name); exit 0 once none is left.
#
# Exit 0 when nginx does not run, also when it did not run to begin with.
# Settings are environment variables, all optional: see README.md.
set -eu

me=nginx/stop.sh

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

bin=$(command -v "${NGINX_BIN:-nginx}") || die "no nginx binary ${NGINX_BIN:-nginx} in PATH (install nginx or set NGINX_BIN)"
# The kernel's process name (comm) is the binary's name, 15 bytes at most.
name=$(basename "$bin" | cut -c1-15)
conf=${NGINX_CONF:-}
prefix=${NGINX_PREFIX:-}
errlog=${NGINX_ERROR_LOG:-}
unit=${NGINX_UNIT:-nginx.service}

# ngx runs nginx with this instance's options (-c, -p, -e) before the given ones.
ngx() {
	if [ -n "$errlog" ]; then set -- -e "$errlog" "$@"; fi
	if [ -n "$prefix" ]; then set -- -p "$prefix" "$@"; fi
	if [ -n "$conf" ]; then set -- -c "$conf" "$@"; fi
	"$bin" "$@"
}

# built VAR prints the value of nginx's compile-time option --VAR (nginx -V).
built() {
	"$bin" -V 2>&1 | tr ' ' '\n' | sed -n "s/^--$1=//p" | head -n 1
}

# pidfile prints the pid file of this instance: NGINX_PID, else the
# configuration's pid directive (nginx -T), else the compiled-in path.
pidfile() {
	_f=${NGINX_PID:-}
	if [ -z "$_f" ]; then
		_f=$(ngx -T 2>/dev/null |
			sed -n 's/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]][^;[:space:]]*\)[[:space:]]*;.*$/\1/p' |
			head -n 1)
	fi
	if [ -z "$_f" ]; then _f=$(built pid-path); fi
	if [ -z "$_f" ]; then _f=/run/nginx.pid; fi
	case $_f in
	/*) ;;
	*)
		# nginx reads relative paths from its prefix.
		_p=$prefix
		if [ -z "$_p" ]; then _p=$(built prefix); fi
		_f=${_p%/}/$_f
		;;
	esac
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

# alive PID succeeds when PID is a live (not zombie) process named like nginx,
# so a pid file naming a dead or reused pid does not count.
alive() {
	readstat "$1" && [ "$s_comm" = "$name" ] && [ "$s_state" != Z ]
}

# master prints the pid in the pid file when it is a live nginx.
master() {
	_m=$(cat "$pidf" 2>/dev/null) || return 1
	case $_m in
	'' | *[!0-9]*) return 1 ;;
	esac
	alive "$_m" || return 1
	printf '%s\n' "$_m"
}

# use_systemd succeeds when nginx is managed through systemctl: NGINX_SYSTEMD
# yes, or auto (the default) on a host booted with systemd that knows the
# unit, unless NGINX_CONF names an instance of one's own.
use_systemd() {
	case ${NGINX_SYSTEMD:-auto} in
	yes) return 0 ;;
	no) return 1 ;;
	auto)
		[ -z "$conf" ] && [ -d /run/systemd/system ] &&
			command -v systemctl >/dev/null 2>&1 &&
			systemctl cat -- "$unit" >/dev/null 2>&1
		;;
	*) die "NGINX_SYSTEMD=$NGINX_SYSTEMD: want auto, yes or no" ;;
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
limit=$(seconds NGINX_STOP_WAIT "${NGINX_STOP_WAIT:-20}")

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

# leaders prints, space-separated, the masters of this instance found by name:
# nginx processes whose command line says "master process" and names
# NGINX_CONF. Without NGINX_CONF every nginx counts as this instance anyway.
leaders() {
	for _d in /proc/[0-9]*; do
		_p=${_d#/proc/}
		alive "$_p" || continue
		_cmd=$(tr '\000' ' ' <"$_d/cmdline" 2>/dev/null) || continue
		case $_cmd in
		*"master process"*"$conf"*) printf '%s ' "$_p" ;;
		esac
	done
}

# victims prints the pids to kill: the pid-file master, its children and the
# members of its session and process group (nginx calls setsid when it
# daemonizes), whatever their name when that master is alive; processes named
# like nginx that belong to a master of this instance or, without NGINX_CONF,
# every process named like nginx.
victims() {
	_m=$(cat "$pidf" 2>/dev/null) || _m=""
	case $_m in
	'' | *[!0-9]* | 0 | 1) _m="" ;;
	esac
	_live=no
	if [ -n "$_m" ] && alive "$_m"; then _live=yes; fi
	_lead=" "
	if [ -n "$conf" ]; then _lead=" $(leaders)"; fi
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
		if [ "$_family" = yes ] || [ -z "$conf" ]; then
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
		say "nginx is not running$via (no live master in $pidf)"
		exit 0
	fi
	kill -QUIT "$pid" 2>/dev/null || true
	if await "$limit" "$pid"; then
		say "nginx stopped (master pid $pid)"
		exit 0
	fi
	die "nginx (master pid $pid) still runs ${limit}s after SIGQUIT (long requests?); stop.sh force kills it"
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
	[ "$round" -le 5 ] || die "nginx processes still run after 5 rounds of SIGKILL: $list"
	# shellcheck disable=SC2086 # $list is a list of pids.
	kill -KILL $list 2>/dev/null || true
	killed="${killed:+$killed }$list"
	# shellcheck disable=SC2086
	await 5 $list || true
done
# nginx leaves its pid file behind when it is killed.
if [ -f "$pidf" ] && ! master >/dev/null; then rm -f "$pidf"; fi
if [ -n "$killed" ]; then
	say "nginx killed (pids $killed)"
else
	say "nginx is not running"
fi
