#!/bin/sh
# farm [app] start script for nginx: starts nginx unless it already runs.
#
# Exit 0 when nginx runs, whether it already did or this script started it;
# exit 1 when the configuration test fails (nginx is then left alone, so a
# bad edit never takes a running node down) or nginx does not come up.
# Settings are environment variables, all optional: see README.md.
set -eu

me=nginx/start.sh

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

[ $# -eq 0 ] || die "usage: start.sh (no arguments; settings come from the environment, see README.md)"
limit=$(seconds NGINX_START_WAIT "${NGINX_START_WAIT:-10}")

if pid=$(master); then
	say "nginx already runs (master pid $pid, pid file $pidf)"
	exit 0
fi
systemd=no
if use_systemd; then systemd=yes; fi
if [ "$systemd" = yes ] && systemctl is-active --quiet -- "$unit"; then
	say "$unit is already active"
	exit 0
fi

# Test the configuration first: starting with a broken one would fail anyway,
# and nginx -t says exactly where the error is.
if ! out=$(ngx -t -q 2>&1); then
	printf '%s\n' "$out" >&2
	die "configuration test failed (nginx -t, output above); nginx was not started"
fi

if [ "$systemd" = yes ]; then
	# A unit that failed too often refuses to start until reset.
	systemctl reset-failed -- "$unit" >/dev/null 2>&1 || true
	systemctl start -- "$unit" || die "systemctl start $unit failed (systemctl status $unit says why)"
	systemctl is-active --quiet -- "$unit" || die "$unit is not active after systemctl start (systemctl status $unit says why)"
	say "$unit started"
	exit 0
fi

# nginx daemonizes; its output goes to a file, not to the agent's pipe, so a
# daemon that keeps a copy of it open cannot hold the agent.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
	# On a systemd host nginx would otherwise stay in farm.service's cgroup
	# and die with the agent (KillMode=mixed): give it a scope of its own.
	set -- systemd-run --scope --quiet --collect --description="nginx started by farm" --
fi
if [ -n "$conf" ]; then set -- "$@" "$bin" -c "$conf"; else set -- "$@" "$bin"; fi
if [ -n "$prefix" ]; then set -- "$@" -p "$prefix"; fi
if [ -n "$errlog" ]; then set -- "$@" -e "$errlog"; fi
if ! "$@" <"/dev/null" >"$log" 2>&1; then
	cat "$log" >&2
	die "nginx did not start (output above; see also its error log)"
fi
cat "$log"

# The master writes its pid file once it has daemonized.
i=0
while ! pid=$(master); do
	i=$((i + 1))
	[ "$i" -le $((limit * 5)) ] || die "nginx started but no live master is in $pidf after ${limit}s (see its error log; NGINX_PID must match the pid directive)"
	sleep 0.2
done
say "nginx started (master pid $pid)"
