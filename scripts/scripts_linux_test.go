//go:build linux

package scripts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/webfarm/farm/checkers/script"
	"github.com/webfarm/farm/internal/testenv"
)

// run runs a script the way the agent does (checkers/script.Run: own process
// group, output captured through a pipe, killed after a minute at most).
func run(t *testing.T, path string, args []string, env []string) script.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return script.Run(ctx, path, args, env)
}

// fakeSystemctl stands in for systemctl: it appends each call to calls and
// keeps each unit's state in a file. A unit named broken* fails to start; a
// unit named stuck* refuses a plain stop until it has been killed.
const fakeSystemctl = `#!/bin/sh
dir=$(dirname "$0")/..
echo "$*" >>"$dir/calls"
cmd=$1
shift
quiet=no
while [ $# -gt 0 ]; do
	case $1 in
	--quiet) quiet=yes; shift ;;
	--signal=* | --no-pager | --lines=*) shift ;;
	--) shift; break ;;
	*) break ;;
	esac
done
u=$1
f="$dir/state.$u"
state=$(cat "$f" 2>/dev/null || echo inactive)
case $cmd in
reset-failed) if [ "$state" = failed ]; then echo inactive >"$f"; fi ;;
start)
	case $u in broken*) echo failed >"$f"; echo "Job for $u failed." >&2; exit 1 ;; esac
	echo active >"$f" ;;
stop)
	case $u in stuck*) if [ "$state" != failed ]; then echo "stop of $u timed out" >&2; exit 1; fi ;; esac
	if [ "$state" != failed ]; then echo inactive >"$f"; fi ;;
kill) if [ "$state" != inactive ]; then echo failed >"$f"; fi ;;
is-active)
	if [ "$quiet" = no ]; then echo "$state"; fi
	[ "$state" = active ] ;;
status) echo "$u - fake unit, $state" ;;
*) echo "fake systemctl: unknown command $cmd" >&2; exit 1 ;;
esac
`

// TestSystemdScripts runs systemd/start.sh and stop.sh against a fake
// systemctl: where the unit names come from, the order of starts and stops,
// and the force path. No root and no systemd needed.
func TestSystemdScripts(t *testing.T) {
	type step struct {
		script   string // start.sh or stop.sh, or a command line using $DIR
		args     []string
		wantCode int
		wantOut  string
	}
	tests := []struct {
		name      string
		unitFile  string // written next to the scripts when not empty
		noCommon  bool   // leave common.sh out of the copy
		farmUnit  string
		active    []string // units active before the first step
		steps     []step
		wantCalls []string
	}{
		{
			name:     "start from the unit file, in its order",
			unitFile: "# the application\nphp8.2-fpm.service\nnginx.service # web\n",
			steps:    []step{{"start.sh", nil, 0, "active: php8.2-fpm.service nginx.service"}},
			wantCalls: []string{
				"reset-failed -- php8.2-fpm.service", "start -- php8.2-fpm.service",
				"reset-failed -- nginx.service", "start -- nginx.service",
				"is-active -- php8.2-fpm.service", "is-active -- nginx.service",
			},
		},
		{
			name:      "FARM_UNIT wins over the file",
			unitFile:  "nginx.service\n",
			farmUnit:  "redis-server.service",
			steps:     []step{{"start.sh", nil, 0, "active: redis-server.service"}},
			wantCalls: []string{"reset-failed -- redis-server.service", "start -- redis-server.service", "is-active -- redis-server.service"},
		},
		{
			name:      "an argument wins over FARM_UNIT",
			farmUnit:  "redis-server.service",
			steps:     []step{{"start.sh", []string{"haproxy.service"}, 0, "active: haproxy.service"}},
			wantCalls: []string{"reset-failed -- haproxy.service", "start -- haproxy.service", "is-active -- haproxy.service"},
		},
		{
			name:      "stop in the reverse order",
			unitFile:  "a.service b.service\n",
			active:    []string{"a.service", "b.service"},
			steps:     []step{{"stop.sh", nil, 0, "stopped: b.service a.service"}},
			wantCalls: []string{"stop -- b.service", "stop -- a.service", "is-active -- b.service", "is-active -- a.service"},
		},
		{
			name:     "force kills, then stops",
			unitFile: "a.service b.service\n",
			active:   []string{"a.service", "b.service"},
			steps:    []step{{"stop.sh", []string{"force"}, 0, "killed and stopped: b.service a.service"}},
			wantCalls: []string{
				"kill --signal=SIGKILL -- b.service", "stop -- b.service",
				"kill --signal=SIGKILL -- a.service", "stop -- a.service",
				"is-active -- b.service", "is-active -- a.service",
			},
		},
		{
			// What the agent does: the stop script fails, so it runs it
			// again with "force"; the unit comes from a command line.
			name:   "a stuck stop fails, the forced one through a command line succeeds",
			active: []string{"stuck.service"},
			steps: []step{
				{`$DIR/stop.sh stuck.service "$@"`, nil, 1, "systemctl stop stuck.service failed"},
				{`$DIR/stop.sh stuck.service "$@"`, []string{"force"}, 0, "killed and stopped: stuck.service"},
			},
			wantCalls: []string{
				"stop -- stuck.service",
				"kill --signal=SIGKILL -- stuck.service", "stop -- stuck.service", "is-active -- stuck.service",
			},
		},
		{
			name:      "a unit that fails to start fails the script",
			farmUnit:  "broken.service",
			steps:     []step{{"start.sh", nil, 1, "systemctl start broken.service failed"}},
			wantCalls: []string{"reset-failed -- broken.service", "start -- broken.service"},
		},
		{
			name:  "no unit named anywhere",
			steps: []step{{"start.sh", nil, 1, "no unit named"}, {"stop.sh", nil, 1, "no unit named"}},
		},
		{
			name:     "start.sh refuses force",
			farmUnit: "nginx.service",
			steps:    []step{{"start.sh", []string{"force"}, 1, "is for stop.sh"}},
		},
		{
			name:     "a unit name cannot be an option",
			farmUnit: "--now nginx.service",
			steps:    []step{{"stop.sh", nil, 1, `cannot start with "-"`}},
		},
		{
			// An install that copied the scripts but not common.sh.
			name:     "common.sh left behind",
			farmUnit: "nginx.service",
			noCommon: true,
			steps: []step{
				{"start.sh", nil, 1, "common.sh is missing: copy the whole folder"},
				{`$DIR/stop.sh "$@"`, []string{"force"}, 1, "common.sh is missing: copy the whole folder"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			scriptDir := filepath.Join(dir, "systemd")
			binDir := filepath.Join(dir, "bin")
			for _, d := range []string{scriptDir, binDir} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// Copies, so that the default unit file next to them is the test's.
			for _, f := range []string{"start.sh", "stop.sh"} {
				copyFile(t, filepath.Join("systemd", f), filepath.Join(scriptDir, f), 0o755)
			}
			if !tt.noCommon {
				copyFile(t, filepath.Join("systemd", "common.sh"), filepath.Join(scriptDir, "common.sh"), 0o644)
			}
			if err := os.WriteFile(filepath.Join(binDir, "systemctl"), []byte(fakeSystemctl), 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.unitFile != "" {
				if err := os.WriteFile(filepath.Join(scriptDir, "unit"), []byte(tt.unitFile), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, u := range tt.active {
				if err := os.WriteFile(filepath.Join(dir, "state."+u), []byte("active\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			env := []string{"PATH=" + binDir + ":" + os.Getenv("PATH"), "FARM_UNIT=" + tt.farmUnit, "FARM_UNIT_FILE="}
			for i, s := range tt.steps {
				path := strings.ReplaceAll(s.script, "$DIR", scriptDir)
				if !strings.Contains(path, "/") {
					path = filepath.Join(scriptDir, path)
				}
				res := run(t, path, s.args, env)
				if res.ExitCode != s.wantCode {
					t.Errorf("step %d (%s %v): exit code %d, want %d; output:\n%s", i+1, s.script, s.args, res.ExitCode, s.wantCode, res.Output)
				}
				if !strings.Contains(res.Output, s.wantOut) {
					t.Errorf("step %d (%s %v): output does not contain %q:\n%s", i+1, s.script, s.args, s.wantOut, res.Output)
				}
			}
			var calls []string
			if b, err := os.ReadFile(filepath.Join(dir, "calls")); err == nil {
				calls = strings.Split(strings.TrimSpace(string(b)), "\n")
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("systemctl calls:\n  %s\nwant:\n  %s", strings.Join(calls, "\n  "), strings.Join(tt.wantCalls, "\n  "))
			}
		})
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// proc is what the nginx test reads of a process in /proc/PID/stat.
type proc struct {
	pid, ppid, sid int
	comm, state    string
}

// readProc reads /proc/PID/stat; ok is false when the process is gone.
func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return proc{}, false
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 4 {
		return proc{}, false
	}
	p := proc{pid: pid, comm: s[open+1 : closing], state: f[0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.sid, _ = strconv.Atoi(f[3])
	return p, true
}

// running reports whether pid is a live process; a zombie has exited (the
// init of a container may never reap a daemon's master).
func running(pid int) bool {
	p, ok := readProc(pid)
	return ok && p.state != "Z"
}

// allProcs lists every live process.
func allProcs() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok && p.state != "Z" {
			out = append(out, p)
		}
	}
	return out
}

// instance returns the live processes of the test's nginx: masters whose
// command line names conf, and their children and session members. Other
// nginx on the machine (other tests' labs) are never included.
func instance(conf string) []int {
	procs := allProcs()
	masters := map[int]bool{}
	for _, p := range procs {
		if p.comm != "nginx" {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/cmdline")
		if bytes.Contains(cmd, []byte(conf)) {
			masters[p.pid] = true
		}
	}
	var out []int
	for _, p := range procs {
		if masters[p.pid] || masters[p.ppid] || masters[p.sid] {
			out = append(out, p.pid)
		}
	}
	return out
}

// adoptDaemons makes the test process the reaper of the daemons its scripts
// start (PR_SET_CHILD_SUBREAPER): otherwise a killed nginx stays a zombie
// forever under a container's init that never reaps. At cleanup it reaps the
// exited nginx processes it adopted, and only those: a wait on any child
// would steal the exit status os/exec waits for.
func adoptDaemons(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Logf("PR_SET_CHILD_SUBREAPER: %v (killed daemons may stay zombies)", err)
		return
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var zombies, living []int
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				if p, ok := readProc(pid); ok && p.ppid == os.Getpid() && p.comm == "nginx" {
					if p.state == "Z" {
						zombies = append(zombies, pid)
					} else {
						living = append(living, pid)
					}
				}
			}
			for _, pid := range zombies {
				var ws unix.WaitStatus
				_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			}
			if len(living) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	})
}

// waitGone waits (bounded) until none of pids runs.
func waitGone(t *testing.T, what string, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []int
		for _, pid := range pids {
			if running(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pids %v still run", what, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitAnswer polls url until it answers 200 with body, or fails the test
// after a bounded wait.
func waitAnswer(t *testing.T, url, body string) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == body {
				return
			}
			last = fmt.Sprintf("status %d, body %q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s did not answer 200 %q: %s", url, body, last)
}

// readPid reads nginx's pid file.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %s: %q is not a pid", path, b)
	}
	return pid
}

const nginxConf = `# nginx for scripts_test.go
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
	worker_connections 64;
}
http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	server {
		listen 127.0.0.1:%[2]d;
		default_type text/plain;
		location / {
			return 200 "farm scripts test\n";
		}
	}
}
`

// TestNginxScripts runs nginx/start.sh and stop.sh for real, as the agent
// would, against an nginx of the test's own (config, pid file, logs and port
// in a temporary directory); nginx runs directly, as on a host without
// systemd.
func TestNginxScripts(t *testing.T) {
	testenv.Need(t, os.Geteuid() == 0, "not root: this test starts a real nginx")
	_, err := exec.LookPath("nginx")
	if err != nil {
		_, err = os.Stat("/usr/sbin/nginx")
	}
	testenv.Need(t, err == nil, "nginx is not installed (apt-get install nginx-light)")

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	pidPath := filepath.Join(dir, "nginx.pid")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	const body = "farm scripts test\n"
	start, err := filepath.Abs("nginx/start.sh")
	if err != nil {
		t.Fatal(err)
	}
	stop := filepath.Join(filepath.Dir(start), "stop.sh")
	// NGINX_PID is left empty: the scripts find the pid file in the config.
	env := []string{
		"NGINX_CONF=" + conf, "NGINX_PREFIX=" + dir + "/", "NGINX_ERROR_LOG=" + filepath.Join(dir, "error.log"),
		"NGINX_SYSTEMD=no", "NGINX_PID=", "NGINX_BIN=", "NGINX_START_WAIT=10", "NGINX_STOP_WAIT=10",
	}
	adoptDaemons(t)
	// Whatever happens, nothing of this nginx outlives the test; nothing
	// else is touched. (Cleanups run last first: this kill, then the reaping.)
	t.Cleanup(func() {
		for _, pid := range instance(conf) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	var master int
	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"start starts nginx", func(t *testing.T) {
			res := run(t, start, nil, env)
			if res.Err != nil {
				t.Fatalf("start.sh: %v\n%s", res.Err, res.Output)
			}
			if strings.Contains(res.Output, "kept its output open") {
				t.Errorf("start.sh left nginx holding the agent's output pipe:\n%s", res.Output)
			}
			master = readPid(t, pidPath)
			if !running(master) {
				t.Fatalf("master %d from the pid file does not run", master)
			}
			waitAnswer(t, url, body)
		}},
		{"start again does nothing", func(t *testing.T) {
			res := run(t, start, nil, env)
			if res.Err != nil || !strings.Contains(res.Output, "already runs") {
				t.Fatalf("start.sh again: %v\n%s", res.Err, res.Output)
			}
			if pid := readPid(t, pidPath); pid != master {
				t.Fatalf("master changed from %d to %d", master, pid)
			}
			waitAnswer(t, url, body)
		}},
		{"stop stops it gracefully", func(t *testing.T) {
			res := run(t, stop, nil, env)
			if res.Err != nil || !strings.Contains(res.Output, "nginx stopped") {
				t.Fatalf("stop.sh: %v\n%s", res.Err, res.Output)
			}
			waitGone(t, "after stop.sh", master)
			if left := instance(conf); len(left) > 0 {
				t.Fatalf("processes of the test's nginx left: %v", left)
			}
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
				c.Close()
				t.Fatalf("port %d still accepts connections", port)
			}
		}},
		{"stop again does nothing", func(t *testing.T) {
			res := run(t, stop, nil, env)
			if res.Err != nil || !strings.Contains(res.Output, "not running") {
				t.Fatalf("stop.sh again: %v\n%s", res.Err, res.Output)
			}
		}},
		{"the agent's forced stop kills an nginx that ignores quit", func(t *testing.T) {
			if res := run(t, start, nil, env); res.Err != nil {
				t.Fatalf("start.sh: %v\n%s", res.Err, res.Output)
			}
			waitAnswer(t, url, body)
			master = readPid(t, pidPath)
			pids := instance(conf)
			if len(pids) < 3 {
				t.Fatalf("want a master and 2 workers, found pids %v", pids)
			}
			// A stopped master cannot act on SIGQUIT: the graceful stop
			// times out and the agent runs the script again with "force".
			if err := syscall.Kill(master, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			r := &script.Runner{
				StopPath: stop,
				Timeout:  time.Minute,
				Env:      append(slices.Clone(env), "NGINX_STOP_WAIT=1", "NGINX_PID="+pidPath),
				Log:      slog.New(slog.NewJSONHandler(&logs, nil)),
			}
			res := r.Stop(t.Context())
			if res.Err != nil || !strings.Contains(res.Output, "nginx killed") {
				t.Fatalf("forced stop: %v\n%s\nlog:\n%s", res.Err, res.Output, logs.String())
			}
			var runs []struct {
				Args     []string `json:"args"`
				ExitCode int      `json:"exit_code"`
			}
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var r struct {
					Args     []string `json:"args"`
					ExitCode int      `json:"exit_code"`
				}
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				runs = append(runs, r)
			}
			if len(runs) != 2 || runs[0].ExitCode != 1 || len(runs[0].Args) != 0 ||
				runs[1].ExitCode != 0 || !slices.Equal(runs[1].Args, []string{"force"}) {
				t.Fatalf("want a failed graceful stop, then a successful stop.sh force; the runner logged:\n%s", logs.String())
			}
			waitGone(t, "after stop.sh force", pids...)
			if _, err := os.Stat(pidPath); !os.IsNotExist(err) {
				t.Errorf("the stale pid file is still there (%v)", err)
			}
		}},
		{"force with nothing to kill", func(t *testing.T) {
			res := run(t, stop, []string{"force"}, env)
			if res.Err != nil || !strings.Contains(res.Output, "not running") {
				t.Fatalf("stop.sh force: %v\n%s", res.Err, res.Output)
			}
		}},
		{"a broken config is refused, nothing starts", func(t *testing.T) {
			bad := filepath.Join(dir, "bad.conf")
			if err := os.WriteFile(bad, []byte(fmt.Sprintf(nginxConf, dir, port)+"no_such_directive on;\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			res := run(t, start, nil, append(slices.Clone(env), "NGINX_CONF="+bad))
			if res.ExitCode != 1 || !strings.Contains(res.Output, "configuration test failed") ||
				!strings.Contains(res.Output, "no_such_directive") {
				t.Fatalf("start.sh with a broken config: exit %d, want 1 and nginx -t's message:\n%s", res.ExitCode, res.Output)
			}
			if left := instance(bad); len(left) > 0 {
				t.Fatalf("nginx started anyway: pids %v", left)
			}
		}},
		{"a bad argument is refused", func(t *testing.T) {
			res := run(t, stop, []string{"now"}, env)
			if res.ExitCode != 1 || !strings.Contains(res.Output, "usage: stop.sh [force]") {
				t.Fatalf("stop.sh now: exit %d, want 1 and the usage:\n%s", res.ExitCode, res.Output)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.do) {
			return // the next steps build on this one
		}
	}
}
