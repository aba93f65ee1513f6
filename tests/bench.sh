#!/bin/sh
# Lab benchmark of `make bench` (run after the Go benchmarks): one table from
# one run, `farmbench compare` (tests/cmd/farmbench) in network namespaces on
# this machine. The farm with the kernel engine (b) and with the NFQUEUE
# engine (b') on 3 nodes, side by side with no filter on one node (a), the
# kernel's own cluster filters on the same 3 nodes (c: xt_cluster, nft
# jhash with ct marks) and a central HAProxy (d); keep-alive, Connection:
# close and UDP loads from 64 client addresses, runs interleaved, medians,
# CPU per request; then the SIGKILL scenario (SYN-ACKs per SYN on the wire,
# the dead node's conntrack). tests/BENCH.md says how to read it. Needs
# root; without it the script skips (and fails when CI=true).
#
# Environment (default):
#   BENCH_DURATION         length of each run (10s)
#   BENCH_RUNS             runs per case and mode; medians are reported (3)
#   BENCH_CASES            none,farm-kernel,farm-nfqueue,xt_cluster,nft-jhash,haproxy
#   BENCH_MODES            keep-alive,close,udp,udp-new
#   BENCH_KILL             1: the SIGKILL scenario after the runs (0: skipped)
#   BENCH_EXTRA            older farmbench scenarios to run after the table,
#                          space-separated: wrk failover recovery (none)
#   BENCH_OUT              directory for the JSON results (none; no spaces)
#   BENCH_FARM             agent binary to measure (bin/farm, built if stale)
#   GO                     go command (go); GOFLAGS is passed through to builds
# For BENCH_EXTRA: BENCH_WRK_DURATION (10s), BENCH_WRK_RUNS (3), BENCH_WRK_CASES
# (baseline,ip,ip-port,ip-multi), BENCH_FAILOVER_TRIALS (10),
# BENCH_FAILOVER_MODES (kill), BENCH_RECOVERY_TRIALS (5).
set -eu

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	if [ "${CI:-}" = true ]; then
		echo "tests/bench.sh: needs root (network namespaces); CI=true, so this is a failure" >&2
		exit 1
	fi
	echo "tests/bench.sh: skipped: needs root (network namespaces)"
	exit 0
fi

GO=${GO:-go}
duration=${BENCH_DURATION:-10s}
runs=${BENCH_RUNS:-3}
cases=${BENCH_CASES:-none,farm-kernel,farm-nfqueue,xt_cluster,nft-jhash,haproxy}
modes=${BENCH_MODES:-keep-alive,close,udp,udp-new}
kill=${BENCH_KILL:-1}
extra=${BENCH_EXTRA:-}
out=${BENCH_OUT:-}

# Debian's HAProxy is the central proxy of case (d); tests/install-deps.sh
# does not install it.
case ",$cases," in
*,haproxy,*)
	if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
		echo "== installing haproxy (Debian package) for case (d)"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq haproxy >/dev/null 2>&1 || {
			apt-get update -qq && apt-get install -y -qq haproxy >/dev/null
		}
	fi
	;;
esac
need="nginx ip tcpdump nft iptables"
case " $extra " in
*" wrk "*) need="$need wrk setpriv" ;;
esac
case " $extra " in
*" failover "* | *" recovery "*) need="$need curl" ;;
esac
for tool in $need; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
		echo "tests/bench.sh: $tool is missing: run make deps (tests/install-deps.sh)" >&2
		exit 1
	fi
done

# Build what is missing or older than its sources (make bench has built
# bin/farm already; this is for running the script on its own).
farm=${BENCH_FARM:-}
if [ -z "$farm" ]; then
	farm=bin/farm
	stale=""
	if [ -x "$farm" ]; then
		stale=$(find agent farm filter checkers console -name '*.go' -newer "$farm" 2>/dev/null | head -n 1)
	fi
	if [ ! -x "$farm" ] || [ -n "$stale" ]; then
		echo "== building $farm"
		CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$GO" build -o "$farm" ./agent/cmd/farm
	fi
fi
echo "== building bin/farmbench"
CGO_ENABLED=0 "$GO" build -o bin/farmbench ./tests/cmd/farmbench

if [ -n "$out" ]; then
	mkdir -p "$out"
fi
# json NAME: farmbench flags that also write the results to $BENCH_OUT/NAME.json.
json() {
	if [ -n "$out" ]; then
		printf '%s\n' "-o" "$out/$1.json"
	fi
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "== lab benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, nproc $(nproc), kernel $(uname -r), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
failed=""

# set -e must not stop the script at the first failed benchmark: every one
# runs, and the exit status says whether any failed.
run() {
	name=$1
	shift
	echo
	echo "== farmbench $name"
	if ! bin/farmbench "$@" -farm "$farm"; then
		failed="$failed $name"
	fi
}

killflag=-kill=true
if [ "$kill" = 0 ]; then
	killflag=-kill=false
fi
# shellcheck disable=SC2046 # json prints zero or two words on purpose
run compare compare -duration "$duration" -runs "$runs" -cases "$cases" -modes "$modes" "$killflag" $(json compare)

for x in $extra; do
	case $x in
	wrk)
		# shellcheck disable=SC2046
		run wrk wrk -duration "${BENCH_WRK_DURATION:-10s}" -runs "${BENCH_WRK_RUNS:-3}" \
			-cases "${BENCH_WRK_CASES:-baseline,ip,ip-port,ip-multi}" $(json wrk)
		;;
	failover)
		for mode in ${BENCH_FAILOVER_MODES:-kill}; do
			# shellcheck disable=SC2046
			run "failover-$mode" failover -mode "$mode" -trials "${BENCH_FAILOVER_TRIALS:-10}" $(json "failover-$mode")
		done
		;;
	recovery)
		# shellcheck disable=SC2046
		run recovery recovery -trials "${BENCH_RECOVERY_TRIALS:-5}" $(json recovery)
		;;
	*)
		echo "tests/bench.sh: BENCH_EXTRA: unknown scenario $x (want wrk, failover, recovery)" >&2
		failed="$failed $x"
		;;
	esac
done

echo
echo "== lab benchmark done in $(($(date +%s) - start)) s, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$failed" ]; then
	echo "tests/bench.sh: failed:$failed" >&2
	exit 1
fi
