#!/bin/sh
# Lab benchmarks of `make bench` (run after the Go benchmarks): throughput
# through the VIP against one node without a filter, and failover times, both
# measured by tests/cmd/farmbench in network namespaces on this machine.
# tests/BENCH.md says what is measured and how to read it. Needs root; without
# it the script skips (and fails when CI=true).
#
# Environment (default):
#   BENCH_WRK_DURATION     wrk -d of each run (10s)
#   BENCH_WRK_RUNS         runs per case and mode; medians are reported (3)
#   BENCH_WRK_CASES        baseline,ip,ip-port,ip-multi
#   BENCH_FAILOVER_TRIALS  kills per gossip setting (10)
#   BENCH_FAILOVER_MODES   "kill" (SIGKILL of the agent); add "link" (eth0 down)
#   BENCH_RECOVERY_TRIALS  keep-alive client of a dead node (0: skipped)
#   BENCH_OUT              directory for the JSON results (none; no spaces)
#   BENCH_FARM             agent binary to measure (bin/farm, built if stale)
#   GO                     go command (go); GOFLAGS is passed through to builds
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
wrk_duration=${BENCH_WRK_DURATION:-10s}
wrk_runs=${BENCH_WRK_RUNS:-3}
wrk_cases=${BENCH_WRK_CASES:-baseline,ip,ip-port,ip-multi}
failover_trials=${BENCH_FAILOVER_TRIALS:-10}
failover_modes=${BENCH_FAILOVER_MODES:-kill}
recovery_trials=${BENCH_RECOVERY_TRIALS:-0}
out=${BENCH_OUT:-}

for tool in wrk nginx ip tcpdump curl setpriv; do
	if ! command -v "$tool" >/dev/null 2>&1; then
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
echo "== lab benchmarks: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, nproc $(nproc), kernel $(uname -r)"
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

# shellcheck disable=SC2046 # json prints zero or two words on purpose
run wrk wrk -duration "$wrk_duration" -runs "$wrk_runs" -cases "$wrk_cases" $(json wrk)
for mode in $failover_modes; do
	# shellcheck disable=SC2046
	run "failover-$mode" failover -mode "$mode" -trials "$failover_trials" $(json "failover-$mode")
done
if [ "$recovery_trials" -gt 0 ]; then
	# shellcheck disable=SC2046
	run recovery recovery -trials "$recovery_trials" $(json recovery)
fi

echo
echo "== lab benchmarks done in $(($(date +%s) - start)) s"
if [ -n "$failed" ]; then
	echo "tests/bench.sh: failed:$failed" >&2
	exit 1
fi
