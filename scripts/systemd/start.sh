#!/bin/sh
# farm [app] start script for any application run by systemd: starts its
# unit(s) and checks that they are active.
#
#   start.sh [UNIT...]
#
# The units come from the arguments, else FARM_UNIT, else the file "unit"
# next to this script (see README.md). Exit 0 when every unit is active
# (systemctl start does nothing for a unit that already is); exit 1 when one
# fails to start.
set -eu

me=systemd/start.sh

# --- common: keep identical in start.sh and stop.sh (scripts_test.go checks) ---
PATH=${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin
export PATH

say() { printf '%s: %s\n' "$me" "$*"; }
die() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}

# The units: the arguments other than "force", else FARM_UNIT, else the file
# named by FARM_UNIT_FILE (default: "unit" next to this script). Several
# units, separated by spaces or lines, start in their order and stop in the
# reverse one. In the file, "#" starts a comment.
force=no
units=""
for a in "$@"; do
	case $a in
	force) force=yes ;;
	*) units="$units $a" ;;
	esac
done
if [ -z "$units" ]; then units=${FARM_UNIT:-}; fi
if [ -z "$units" ]; then
	file=${FARM_UNIT_FILE:-$(dirname "$0")/unit}
	[ -r "$file" ] || die "no unit named: pass it as an argument, set FARM_UNIT, or write it to $file (see README.md)"
	units=$(sed 's/#.*//' "$file")
fi
# Unit names are words: no globbing of them, whatever they hold.
set -f
list=""
for u in $units; do
	case $u in
	-*) die "unit \"$u\": a unit name cannot start with \"-\"" ;;
	esac
	list="${list:+$list }$u"
done
[ -n "$list" ] || die "no unit named: pass it as an argument, set FARM_UNIT, or write it to ${file:-the unit file} (see README.md)"
command -v systemctl >/dev/null 2>&1 || die "systemctl not found: this host does not run systemd (use the nginx or apache scripts, which run the daemon directly)"

# state UNIT prints the unit's ActiveState: active, inactive, failed,
# activating, deactivating...
state() {
	systemctl is-active -- "$1" 2>/dev/null || true
}
# --- end common ---

[ "$force" = no ] || die "usage: start.sh [UNIT...] (\"force\" is for stop.sh)"

for u in $list; do
	# A unit that failed too often refuses to start until reset.
	systemctl reset-failed -- "$u" >/dev/null 2>&1 || true
	systemctl start -- "$u" || die "systemctl start $u failed (systemctl status $u says why)"
done
for u in $list; do
	s=$(state "$u")
	if [ "$s" != active ]; then
		systemctl status --no-pager --lines=10 -- "$u" >&2 || true
		die "$u is \"$s\" after systemctl start, not active (a oneshot unit needs RemainAfterExit=yes)"
	fi
done
say "active: $list"
