#!/bin/sh
# An agent's footprint (issue 9, part 7): CPU (% of one core) and memory (RSS)
# of real `farm agent` processes, idle and under load. It builds its own small
# farm: FOOTPRINT_NODES agents, each in a network namespace of its own, joined
# by veth pairs to a bridge in a switch namespace, and a client namespace on
# the same bridge; nothing runs in the host's namespace. The namespaces are
# named after this script's PID and removed at the end; only the processes
# this script started are stopped.
#
# idle: the farm up, nothing else running, for FOOTPRINT_IDLE seconds (a
#       single node probes nobody, so the default is 3 nodes: gossip costs
#       what a real farm's does).
# load: nginx on every node and wrk in the client namespace opening new
#       connections to the VIP (Connection: close, affinity ip-port so they
#       spread over the nodes) for FOOTPRINT_LOAD seconds.
# CPU is (utime + stime) from /proc/PID/stat over the window; RSS is VmRSS
# from /proc/PID/status at the end of the window, peak VmHWM since start.
#
# Environment (default):
#   FOOTPRINT_NODES   agents (3)
#   FOOTPRINT_IDLE    idle window in seconds (30)
#   FOOTPRINT_LOAD    load window in seconds (30; 0 skips the load phase)
#   FOOTPRINT_SETTLE  seconds between the farm being up and the idle window (5)
#   FOOTPRINT_FARM    agent binary (bin/farm, built if missing or stale)
#   FOOTPRINT_GOSSIP  extra lines for the [gossip] section, e.g.
#                     'probe_interval = "200ms"' (none: the config defaults)
#   FOOTPRINT_ENGINE  [filter] engine (none: the config default)
#   GO                go command (go)
# Needs root; without it the script skips (and fails when CI=true).
set -eu

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	if [ "${CI:-}" = true ]; then
		echo "tests/footprint.sh: needs root (network namespaces); CI=true, so this is a failure" >&2
		exit 1
	fi
	echo "tests/footprint.sh: skipped: needs root (network namespaces)"
	exit 0
fi

GO=${GO:-go}
nodes=${FOOTPRINT_NODES:-3}
idle=${FOOTPRINT_IDLE:-30}
load=${FOOTPRINT_LOAD:-30}
settle=${FOOTPRINT_SETTLE:-5}
gossip_extra=${FOOTPRINT_GOSSIP:-}
engine=${FOOTPRINT_ENGINE:-}

for tool in ip nginx wrk getconf; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "tests/footprint.sh: $tool is missing: run make deps (tests/install-deps.sh)" >&2
		exit 1
	fi
done
if [ "$nodes" -lt 1 ] || [ "$nodes" -gt 9 ]; then
	echo "tests/footprint.sh: FOOTPRINT_NODES must be 1..9" >&2
	exit 1
fi

farm=${FOOTPRINT_FARM:-}
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
farm=$(cd "$(dirname "$farm")" && pwd)/$(basename "$farm")

tag=fp$$
sw=$tag-sw
cl=$tag-cl
vip=10.99.0.100
tmp=$(mktemp -d /tmp/farm-footprint.XXXXXX)
agent_pids=""
other_pids=""
namespaces=""

cleanup() {
	set +e
	for pid in $other_pids $agent_pids; do
		kill -TERM "$pid" 2>/dev/null
	done
	# Agents leave the farm and remove their rules on SIGTERM; give them
	# a moment, then force what still runs (our PIDs only).
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		alive=""
		for pid in $other_pids $agent_pids; do
			if kill -0 "$pid" 2>/dev/null; then
				alive="$alive $pid"
			fi
		done
		[ -z "$alive" ] && break
		sleep 0.5
	done
	for pid in $other_pids $agent_pids; do
		kill -KILL "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	for ns in $namespaces; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

addns() {
	ip netns add "$1"
	namespaces="$namespaces $1"
	ip -n "$1" link set lo up
}

# The switch, the nodes and the client.
addns "$sw"
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
i=1
while [ "$i" -le "$nodes" ]; do
	addns "$tag-n$i"
	ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$tag-n$i"
	ip -n "$sw" link set "p$i" master br0 up
	ip -n "$tag-n$i" link set eth0 up
	ip -n "$tag-n$i" addr add "10.99.0.1$i/24" dev eth0
	i=$((i + 1))
done
addns "$cl"
ip -n "$sw" link add pc type veth peer name eth0 netns "$cl"
ip -n "$sw" link set pc master br0 up
ip -n "$cl" link set eth0 up
ip -n "$cl" addr add 10.99.0.50/24 dev eth0

"$farm" keygen >"$tmp/gossip.key"
chmod 600 "$tmp/gossip.key"

i=1
while [ "$i" -le "$nodes" ]; do
	join=""
	j=1
	while [ "$j" -le "$nodes" ]; do
		if [ "$j" -ne "$i" ]; then
			join="$join${join:+, }\"10.99.0.1$j:7946\""
		fi
		j=$((j + 1))
	done
	mkdir -p "$tmp/n$i/state" "$tmp/n$i/nginx/tmp"
	{
		printf 'state_dir = "%s"\n\n[node]\nname = "web%d"\nid = %d\n\n' "$tmp/n$i/state" "$i" "$i"
		printf '[gossip]\nbind = "10.99.0.1%d:7946"\njoin = [%s]\nkey_file = "%s"\n' "$i" "$join" "$tmp/gossip.key"
		if [ "$nodes" -eq 1 ]; then
			printf 'bootstrap = true\n'
		fi
		if [ -n "$gossip_extra" ]; then
			printf '%s\n' "$gossip_extra"
		fi
		printf '\n[[vip]]\naddress = "%s"\ninterface = "eth0"\nmode = "vmac"\n\n' "$vip"
		printf '[[rule]]\nproto = "tcp"\nports = "80"\naffinity = "ip-port"\n\n'
		if [ -n "$engine" ]; then
			printf '[filter]\nengine = "%s"\n\n' "$engine"
		fi
		printf '[console]\nlisten = "127.0.0.1:9010"\n'
	} >"$tmp/n$i/farm.toml"
	if ! "$farm" check --config "$tmp/n$i/farm.toml" >"$tmp/n$i/check.log" 2>&1; then
		echo "tests/footprint.sh: the generated config does not pass farm check:" >&2
		cat "$tmp/n$i/check.log" >&2
		exit 1
	fi
	# ip netns exec execs the agent: $! is the agent's PID.
	ip netns exec "$tag-n$i" "$farm" agent --config "$tmp/n$i/farm.toml" >"$tmp/n$i/agent.log" 2>&1 &
	agent_pids="$agent_pids $!"
	i=$((i + 1))
done

# Wait until every agent sees every node up.
deadline=$(($(date +%s) + 60))
while :; do
	ready=0
	i=1
	while [ "$i" -le "$nodes" ]; do
		up=$(ip netns exec "$tag-n$i" "$farm" status --json --config "$tmp/n$i/farm.toml" 2>/dev/null |
			grep -o '"state": *"up"' | wc -l) || up=0
		if [ "$up" -eq "$nodes" ]; then
			ready=$((ready + 1))
		fi
		i=$((i + 1))
	done
	[ "$ready" -eq "$nodes" ] && break
	if [ "$(date +%s)" -gt "$deadline" ]; then
		echo "tests/footprint.sh: the farm did not come up within 60 s; agent logs:" >&2
		tail -n 20 "$tmp"/n*/agent.log >&2
		exit 1
	fi
	sleep 0.5
done
sleep "$settle"

hz=$(getconf CLK_TCK)
# ticks PID: utime + stime in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the command name in parentheses).
ticks() {
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
# kib PID FIELD: a VmRSS/VmHWM-style field of /proc/PID/status in KiB.
kib() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
now_ms() {
	date +%s%3N
}

# window NAME SECONDS [COMMAND...]: measures every agent over SECONDS while
# COMMAND (if any) runs, and appends one line per agent to $tmp/NAME.
window() {
	name=$1
	secs=$2
	shift 2
	: >"$tmp/$name.start"
	for pid in $agent_pids; do
		echo "$pid $(ticks "$pid")" >>"$tmp/$name.start"
	done
	t0=$(now_ms)
	if [ "$#" -gt 0 ]; then
		"$@"
	else
		sleep "$secs"
	fi
	t1=$(now_ms)
	: >"$tmp/$name"
	while read -r pid t; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "tests/footprint.sh: agent $pid died during the $name window" >&2
			exit 1
		fi
		awk -v a="$t" -v b="$(ticks "$pid")" -v hz="$hz" -v ms=$((t1 - t0)) \
			-v rss="$(kib "$pid" VmRSS)" -v hwm="$(kib "$pid" VmHWM)" \
			'BEGIN { printf "%.2f %.1f %.1f\n", 100 * (b - a) / hz / (ms / 1000), rss / 1024, hwm / 1024 }' >>"$tmp/$name"
	done <"$tmp/$name.start"
}

echo "== footprint: $nodes agents ($farm), nproc $(nproc), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$gossip_extra" ]; then
	echo "== [gossip] extra: $gossip_extra"
fi
echo "== idle for $idle s"
window idle "$idle"

rps=""
if [ "$load" -gt 0 ]; then
	i=1
	while [ "$i" -le "$nodes" ]; do
		d=$tmp/n$i/nginx
		cat >"$d/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $d/tmp;
	proxy_temp_path $d/tmp;
	fastcgi_temp_path $d/tmp;
	uwsgi_temp_path $d/tmp;
	scgi_temp_path $d/tmp;
	server {
		listen 0.0.0.0:80 backlog=4096;
		default_type text/plain;
		location / { return 200 "web$i\n"; }
	}
}
EOF
		ip netns exec "$tag-n$i" nginx -c "$d/nginx.conf" -p "$d/" -e "$d/error.log" -g 'daemon off;' &
		other_pids="$other_pids $!"
		i=$((i + 1))
	done
	# Wait until the VIP answers from the client.
	deadline=$(($(date +%s) + 30))
	until ip netns exec "$cl" wrk -t1 -c1 -d1s "http://$vip/" 2>/dev/null | grep -q 'Requests/sec'; do
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "tests/footprint.sh: the VIP does not answer from the client namespace" >&2
			tail -n 20 "$tmp"/n*/agent.log >&2
			exit 1
		fi
		sleep 0.5
	done
	echo "== load for $load s: wrk -t1 -c32 -H 'Connection: close' http://$vip/ from $cl"
	loadcmd() {
		ip netns exec "$cl" wrk -t1 -c32 -d"${load}s" -H 'Connection: close' "http://$vip/" >"$tmp/wrk.out" 2>&1
	}
	window load "$load" loadcmd
	rps=$(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk.out")
	errs=$(awk '/Non-2xx|Socket errors/' "$tmp/wrk.out")
	echo "== wrk: $rps req/s${errs:+; $errs}"
fi

echo
[ -s "$tmp/load" ] || awk '{ print "- -", $3 }' "$tmp/idle" >"$tmp/load"
paste -d' ' "$tmp/idle" "$tmp/load" | awk '
	BEGIN { printf "%-6s %10s %10s %10s %10s %10s\n", "node", "idle_cpu%", "idle_rss", "load_cpu%", "load_rss", "peak_rss" }
	{
		# idle: cpu rss hwm; load: cpu rss hwm ("-" without a load phase)
		l = ($4 != "-")
		printf "%-6s %10.2f %9.1fM %10s %10s %9.1fM\n", "web" NR, $1, $2,
			(l ? sprintf("%.2f", $4) : "-"), (l ? sprintf("%.1fM", $5) : "-"), $6
		ic += $1; ir += $2; lc += $4; lr += $5; if ($6 > h) h = $6
	}
	END {
		printf "%-6s %10.2f %9.1fM %10s %10s %9.1fM\n", "mean", ic / NR, ir / NR,
			(l ? sprintf("%.2f", lc / NR) : "-"), (l ? sprintf("%.1fM", lr / NR) : "-"), h
	}'
echo "(CPU: % of one core over the window; RSS: VmRSS at the end of the window; peak: VmHWM, max for mean)"
