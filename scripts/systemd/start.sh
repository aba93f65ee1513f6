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

# common.sh, next to this script, holds what start.sh and stop.sh share.
common=$(dirname -- "$0")/common.sh
[ -r "$common" ] || { printf '%s: %s\n' "$me" "$common is missing: copy the whole folder (see README.md)" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$common"

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
