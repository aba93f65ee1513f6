# shellcheck shell=sh
# What systemd/start.sh and systemd/stop.sh share, sourced by both from their own
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

# The units: the arguments other than "force", else FARM_UNIT, else the file
# named by FARM_UNIT_FILE (default: "unit" next to the scripts). Several
# units, separated by spaces or lines, start in their order and stop in the
# reverse one. In the file, "#" starts a comment.
force=no
units=""
for a in "$@"; do
	# shellcheck disable=SC2034 # force serves start.sh and stop.sh.
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
