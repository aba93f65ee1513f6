package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the lab started inside a namespace, in its own session
// (so it survives its starter, and its process group can be killed whole).
type Proc struct {
	name    string
	ns      string
	pid     int
	logPath string
	pidFile string
	stopTO  time.Duration
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// PID is the process ID (also its process group and session ID).
func (p *Proc) PID() int { return p.pid }

// Name is the lab's name for the process ("agent-web1", "nginx-web2").
func (p *Proc) Name() string { return p.name }

// LogPath is the file that receives the process's standard output and error
// ("" for a capture, whose output the lab reads itself).
func (p *Proc) LogPath() string { return p.logPath }

// Log returns the last 64 KiB of the log, for a test's failure output.
func (p *Proc) Log() string { return tailFile(p.logPath, 64<<10) }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the process exits and returns its exit error (nil for
// status 0; an *exec.ExitError otherwise).
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process alone (SIGHUP to reload, say).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("signal %s: %s (pid %d) has exited", sig, p.name, p.pid)
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s to %s (pid %d): %w", sig, p.name, p.pid, err)
	}
	return nil
}

// Kill sends SIGKILL to the process alone, as a crash would, and waits for
// it to exit. Children in its group (scripts it ran) are left to Close.
func (p *Proc) Kill() error {
	if err := p.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		return err
	}
	return p.waitFor(5*time.Second, "SIGKILL")
}

// Stop asks the process to exit (SIGTERM), waits up to the lab's
// StopTimeout, then kills its whole process group. The error says if it had
// to be killed: a clean shutdown returns nil whatever the exit status.
func (p *Proc) Stop() error {
	if p.Exited() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(p.stopTO):
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if err := p.waitFor(5*time.Second, "SIGKILL"); err != nil {
		return err
	}
	return fmt.Errorf("%s (pid %d) did not exit within %s of SIGTERM; killed its process group", p.name, p.pid, p.stopTO)
}

func (p *Proc) waitFor(d time.Duration, what string) error {
	select {
	case <-p.done:
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s (pid %d) still running %s after %s", p.name, p.pid, d, what)
	}
}

// startProc starts args inside namespace ns in a new session, records its
// pid file and reaps it in the background. setup wires its output.
func (l *Lab) startProc(name, ns string, args []string, logPath string, setup func(*exec.Cmd) error) (*Proc, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("start %s: lab %s is closed", name, l.ID)
	}
	if old := l.procs[name]; old != nil && !old.Exited() {
		return nil, fmt.Errorf("start %s: already running (pid %d); stop it first", name, old.pid)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	if ns == "" { // this machine's own namespace
		cmd = exec.Command(args[0], args[1:]...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var logf *os.File
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start %s: open log: %w", name, err)
		}
		logf = f
		fmt.Fprintf(f, "=== tests/lab %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
		cmd.Stdout, cmd.Stderr = f, f
	}
	if setup != nil {
		if err := setup(cmd); err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
	}
	err := cmd.Start()
	if logf != nil {
		_ = logf.Close() // the child has its own copy
	}
	if err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	p := &Proc{
		name:    name,
		ns:      ns,
		pid:     cmd.Process.Pid,
		logPath: logPath,
		pidFile: filepath.Join(l.pidDir(), name+".pid"),
		stopTO:  l.opts.StopTimeout,
		cmd:     cmd,
		done:    make(chan struct{}),
	}
	// Our unreaped child cannot change identity, so its start time is safe
	// to read now; the record lets a later cleanup prove a PID is still ours.
	start, _ := procStart(p.pid)
	werr := os.WriteFile(p.pidFile, []byte(fmt.Sprintf("%d %d\n", p.pid, start)), 0o644)
	go func() {
		p.err = cmd.Wait()
		// Keep the record while its group still has members (scripts the
		// process left behind): Close kills them by it.
		if errors.Is(syscall.Kill(-p.pid, 0), syscall.ESRCH) {
			_ = os.Remove(p.pidFile)
		}
		close(p.done)
	}()
	l.procs[name] = p
	if werr != nil {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		return nil, fmt.Errorf("start %s: record pid: %w", name, werr)
	}
	return p, nil
}

// killRecorded SIGKILLs the process group of every pid file in runDir that
// still names the process it recorded, then waits (up to 5 s) for them to
// be gone. Two kinds of records exist: the lab's own (pids/NAME.pid, "pid
// start-time") and nginx's (NODE/nginx/nginx.pid, "pid"), the latter checked
// by its command line naming runDir.
func killRecorded(runDir string) error {
	if runDir == "" {
		return nil
	}
	var files []string
	own, _ := filepath.Glob(filepath.Join(runDir, "pids", "*.pid"))
	files = append(files, own...)
	ngx, _ := filepath.Glob(filepath.Join(runDir, "*", "nginx", "nginx.pid"))
	files = append(files, ngx...)
	var killed []int
	var errs []error
	for _, f := range files {
		pid, ok := recordedLive(f, runDir)
		if !ok {
			continue
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill process group %d (%s): %w", pid, f, err))
			continue
		}
		killed = append(killed, pid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for !procGone(pid) && time.Now().Before(deadline) {
			time.Sleep(pollInterval)
		}
		if !procGone(pid) {
			errs = append(errs, fmt.Errorf("process %d still alive 5s after SIGKILL", pid))
		}
	}
	return errors.Join(errs...)
}

// recordedLive reads a pid file and says whether its process group may be
// killed: the leader is the recorded process (same start time, or for
// nginx's own file a command line naming runDir), or the leader is gone but
// its group may still have members (a PID number stays allocated while it is
// any live process's group ID, so it cannot name someone else's group).
func recordedLive(file, runDir string) (int, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 1 {
		return 0, false
	}
	start, err := procStart(pid)
	if err != nil {
		// Leader gone: kill(-pid) reaches only members left in its group.
		return pid, true
	}
	if len(fields) >= 2 {
		want, err := strconv.ParseUint(fields[1], 10, 64)
		return pid, err == nil && want == start
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return pid, err == nil && strings.Contains(string(cmdline), runDir)
}

// procStat returns a process's state letter and start time (clock ticks
// since boot, field 22 of /proc/PID/stat).
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces: split after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

func procStart(pid int) (uint64, error) {
	_, s, err := procStat(pid)
	return s, err
}

// procGone is true when pid no longer runs; a zombie counts as gone, since
// its parent may be an init that never reaps.
func procGone(pid int) bool {
	st, _, err := procStat(pid)
	return err != nil || st == 'Z' || st == 'X'
}

func selfOwner() Owner {
	pid := os.Getpid()
	start, _ := procStart(pid)
	return Owner{PID: pid, Start: start}
}

func ownerAlive(o Owner) bool {
	if o.PID <= 0 {
		return false
	}
	start, err := procStart(o.PID)
	return err == nil && start == o.Start && !procGone(o.PID)
}

// tailFile returns the last max bytes of a file ("" if it cannot be read).
func tailFile(path string, max int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return string(b)
}
