package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartNginx starts node i's nginx (daemon off, a lab-owned child) and waits
// until it accepts connections on 127.0.0.1:80 and [::1]:80 in the node's
// namespace. It answers "200 web<i>\n" on every path and address.
func (l *Lab) StartNginx(i int) error {
	n := l.Node(i)
	if pid, ok := l.nginxPid(i); ok {
		return fmt.Errorf("start nginx on %s: already running (pid %d)", n.Name, pid)
	}
	args := append(l.nginxArgs(i), "-g", "daemon off;")
	p, err := l.startProc("nginx-"+n.Name, n.NS, args, l.nginxErrLog(i)+".out", nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, addr := range []string{"127.0.0.1:80", "[::1]:80"} {
		if err := l.waitListening(ctx, n.NS, addr, p); err != nil {
			_ = p.Kill()
			return fmt.Errorf("start nginx on %s: %w; nginx said: %s", n.Name, err,
				strings.TrimSpace(tailFile(l.nginxErrLog(i), 2000)+"\n"+tailFile(l.nginxErrLog(i)+".out", 2000)))
		}
	}
	return nil
}

// StopNginx stops node i's nginx, whoever started it (the lab or the start
// script): SIGTERM to its master, then after 5 s SIGKILL to its group. It is
// not an error if nginx was not running.
func (l *Lab) StopNginx(i int) error {
	n := l.Node(i)
	pid, ok := l.nginxPid(i)
	l.mu.Lock()
	p := l.procs["nginx-"+n.Name]
	l.mu.Unlock()
	if !ok && p != nil && !p.Exited() {
		pid, ok = p.pid, true
	}
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop nginx on %s (pid %d): %w", n.Name, pid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !procGone(pid) && time.Now().Before(deadline) {
		time.Sleep(pollInterval)
	}
	if !procGone(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	if p != nil && p.pid == pid {
		if err := p.waitFor(5*time.Second, "stop"); err != nil {
			return fmt.Errorf("stop nginx on %s: %w", n.Name, err)
		}
	}
	return nil
}

// nginxPid returns the live master of node i's nginx from nginx's own pid
// file (checked against its command line, so a reused PID is not taken).
func (l *Lab) nginxPid(i int) (int, bool) {
	b, err := os.ReadFile(l.nginxPidPath(i))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 || procGone(pid) {
		return 0, false
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmd), l.nginxConfPath(i)) {
		return 0, false
	}
	return pid, true
}

func (l *Lab) nginxErrLog(i int) string { return l.NginxDir(i) + "/error.log" }

// waitListening polls until addr accepts a TCP connection in namespace ns,
// p exits, or ctx ends.
func (l *Lab) waitListening(ctx context.Context, ns, addr string, p *Proc) error {
	dial := l.DialContext(ns, netipZero)
	var last error
	for {
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		last = err
		if p != nil && p.Exited() {
			return fmt.Errorf("exited before listening on %s (%v)", addr, p.err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not listening on %s: %w", addr, last)
		case <-time.After(pollInterval):
		}
	}
}
