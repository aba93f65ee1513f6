# shellcheck shell=sh
# What nginx/start.sh and nginx/stop.sh share, sourced by both from their own
# folder after they set me (their name, for messages); not run on its own.
# Keep it next to them: copy the whole folder.
PATH=${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin
export PATH

# shellcheck disable=SC2154 # me is set by the script that sources this file.
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
