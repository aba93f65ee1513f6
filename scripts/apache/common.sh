# shellcheck shell=sh
# What apache/start.sh and apache/stop.sh share, sourced by both from their own
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
