package lab

import (
	"fmt"
	"path/filepath"
)

// nginxConf renders node i's nginx config: one worker, no access log,
// keep-alive on, listening on every address of both families (so it answers
// on the VIP once an agent claims it), and "<name>\n" with status 200 for
// every path, so a response names the node that served it. "daemon" is left
// out on purpose: the lab passes -g "daemon off;" to run it as its own child,
// while the start script lets it daemonize.
func (l *Layout) nginxConf(i int) string {
	n := l.Node(i)
	dir := l.NginxDir(i)
	tmp := func(s string) string { return filepath.Join(dir, "tmp", s) }
	return fmt.Sprintf(`# nginx for lab %[1]s node %[2]s, written by tests/lab.
worker_processes 1;
pid %[3]s;
error_log %[4]s warn;

events {
	worker_connections 4096;
}

http {
	access_log off;
	keepalive_timeout 65s;
	keepalive_requests 1000000;
	client_body_temp_path %[5]s;
	proxy_temp_path %[6]s;
	fastcgi_temp_path %[7]s;
	uwsgi_temp_path %[8]s;
	scgi_temp_path %[9]s;

	server {
		listen 0.0.0.0:80 backlog=4096;
		listen [::]:80 ipv6only=on backlog=4096;
		default_type text/plain;
		location / {
			return 200 "%[2]s\n";
		}
	}
}
`, l.ID, n.Name, l.nginxPidPath(i), filepath.Join(dir, "error.log"),
		tmp("body"), tmp("proxy"), tmp("fastcgi"), tmp("uwsgi"), tmp("scgi"))
}

// nginxArgs is the command line that runs node i's nginx (without the
// daemon setting).
func (l *Layout) nginxArgs(i int) []string {
	dir := l.NginxDir(i)
	return []string{"nginx", "-c", l.nginxConfPath(i), "-p", dir + "/", "-e", filepath.Join(dir, "error.log")}
}

// nginxStartScript starts node i's nginx as a daemon unless its pid file
// names a live process. It runs in whatever namespace calls it: the agent's.
func (l *Layout) nginxStartScript(i int) string {
	a := l.nginxArgs(i)
	return fmt.Sprintf(`#!/bin/sh
# Starts nginx of lab %[1]s node %[2]s unless it already runs (tests/lab).
set -eu
pidfile=%[3]q
if [ -s "$pidfile" ]; then
	pid=$(cat "$pidfile")
	# Running means: this nginx (not a reused PID), and not a zombie (its
	# parent may never reap it).
	if grep -qF %[11]q "/proc/$pid/cmdline" 2>/dev/null &&
		! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
		exit 0
	fi
fi
exec %[4]s %[5]q %[6]q %[7]q %[8]q %[9]q %[10]q
`, l.ID, l.Node(i).Name, l.nginxPidPath(i), a[0], a[1], a[2], a[3], a[4], a[5], a[6], l.nginxConfPath(i))
}

// nginxStopScript stops node i's nginx by its pid file: SIGTERM, up to 5 s
// of waiting, then SIGKILL of its process group.
func (l *Layout) nginxStopScript(i int) string {
	return fmt.Sprintf(`#!/bin/sh
# Stops nginx of lab %[1]s node %[2]s by its pid file (tests/lab).
set -u
pidfile=%[3]q
[ -s "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
# A zombie counts as gone: its parent may never reap it.
alive() { [ -d "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; }
alive || exit 0
kill -TERM "$pid" 2>/dev/null || exit 0
i=0
while alive && [ "$i" -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
if alive; then
	kill -KILL -- "-$pid" 2>/dev/null
fi
exit 0
`, l.ID, l.Node(i).Name, l.nginxPidPath(i))
}
