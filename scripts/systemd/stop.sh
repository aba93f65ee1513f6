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

# common.sh, next to this script, holds what start.sh and stop.sh share.
common=$(dirname -- "$0")/common.sh
[ -r "$common" ] || { printf '%s: %s\n' "$me" "$common is missing: copy the whole folder (see README.md)" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$common"

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
