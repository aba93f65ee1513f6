#!/bin/sh
# farm [app] stop script for any application run by systemd: stops its
# unit(s), or kills them.
#
#   stop.sh [UNIT...]        systemctl stop, in the reverse order of the list
#   stop.sh [UNIT...] force  systemctl kill --signal=SIGKILL (every process of
#                            the unit's cgroup), then systemctl stop
#
# The units come from the arguments, else FARM_UNIT, else the file "unit"
# next to this script (see README.md). Exit 0 when no unit is left active or
# on its way (inactive or failed); the agent runs "stop.sh force" when the
# graceful stop fails or outlives [app] timeout.
set -eu

me=systemd/stop.sh

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

reverse=""
for u in $list; do reverse="$u${reverse:+ $reverse}"; done

if [ "$force" = yes ]; then
	for u in $reverse; do
		systemctl kill --signal=SIGKILL -- "$u" >/dev/null 2>&1 || true
		# Ends the unit's stop job, if one is still waiting.
		systemctl stop -- "$u" || true
	done
else
	for u in $reverse; do
		systemctl stop -- "$u" || die "systemctl stop $u failed (systemctl status $u says why); stop.sh force kills it"
	done
fi
left=""
for u in $reverse; do
	s=$(state "$u")
	case $s in
	inactive | failed) ;;
	*) left="${left:+$left, }$u ($s)" ;;
	esac
done
[ -z "$left" ] || die "still running after systemctl stop: $left"
if [ "$force" = yes ]; then
	say "killed and stopped: $reverse"
else
	say "stopped: $reverse"
fi
