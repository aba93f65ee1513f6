//go:build !windows

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/webfarm/farm/scripts"
)

// Where the unit and the init script live, relative to the root.
const (
	unitFile  = "/etc/systemd/system/farm.service"
	sysvFile  = "/etc/init.d/farm"
	unitName  = "farm.service"
	runTimout = 2 * time.Minute // systemctl stop waits up to TimeoutStopSec (30s) and more
)

// vendorUnits are where a package puts the unit (the .deb: /usr/lib).
var vendorUnits = []string{"/usr/lib/systemd/system/farm.service", "/lib/systemd/system/farm.service"}

// unixService is the agent's service on Linux: a systemd unit, or a SysV
// init script where systemd does not run.
type unixService struct {
	o serviceOptions
	// online: contact the service manager (systemctl, update-rc.d); false
	// with --root, which only writes files.
	online bool
	// systemd: systemd is this host's init (/run/systemd/system exists).
	systemd bool
	// run runs a service-manager command and returns its output.
	run func(name string, args ...string) ([]byte, error)
}

func newServiceManager(o serviceOptions) (serviceManager, error) {
	s := &unixService{o: o, online: o.root == "", run: runTool}
	if s.online {
		s.systemd = systemdRunning()
	}
	return s, nil
}

// systemdRunning is sd_booted(): systemd creates /run/systemd/system at boot.
func systemdRunning() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// pid1 names this host's init, for messages.
func pid1() string {
	b, err := os.ReadFile("/proc/1/comm")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

func runTool(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = "no output"
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

func (s *unixService) path(p string) string { return filepath.Join(s.o.root, p) }

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// kind is the init system an action applies to: --init, else whatever is
// installed, else systemd.
func (s *unixService) kind() string {
	if s.o.init != "" {
		return s.o.init
	}
	if !s.unitInstalled() && exists(s.path(sysvFile)) {
		return "sysv"
	}
	return "systemd"
}

// installedUnit returns the unit file in use: ours in /etc, else a
// package's; "" when there is none.
func (s *unixService) installedUnit() string {
	for _, p := range append([]string{unitFile}, vendorUnits...) {
		if exists(s.path(p)) {
			return p
		}
	}
	return ""
}

func (s *unixService) unitInstalled() bool { return s.installedUnit() != "" }

func (s *unixService) say(format string, a ...any) { fmt.Fprintf(s.o.out, format+"\n", a...) }

func (s *unixService) install() error {
	if err := s.refuseInstalled(); err != nil {
		return err
	}
	if s.online && !s.systemd && s.o.init != "sysv" {
		return fmt.Errorf("service install: systemd is not running on this host (PID 1 is %s), and the service is a systemd unit: "+
			"use --init sysv to install a SysV init script (%s) instead, or run `%s agent --config %s` under the supervisor this host uses",
			pid1(), sysvFile, s.o.bin, s.o.config)
	}
	if s.kind() == "sysv" {
		return s.installSysV()
	}
	return s.installUnit()
}

// refuseInstalled says where the service is installed already, if it is.
func (s *unixService) refuseInstalled() error {
	if exists(s.path(unitFile)) {
		return fmt.Errorf("service install: %w: %s exists (farm service status shows its state; farm service uninstall removes it, then install again to change it)",
			errAlreadyInstalled, s.path(unitFile))
	}
	for _, p := range vendorUnits {
		if exists(s.path(p)) {
			return fmt.Errorf("service install: %w by the farm package: %s exists (systemctl enable --now farm runs it; systemctl edit farm changes its config path)",
				errAlreadyInstalled, s.path(p))
		}
	}
	if exists(s.path(sysvFile)) {
		return fmt.Errorf("service install: %w as a SysV init script: %s exists (farm service uninstall removes it)", errAlreadyInstalled, s.path(sysvFile))
	}
	return nil
}

func (s *unixService) installUnit() error {
	text, err := scripts.Render(scripts.Unit, s.o.bin, s.o.config)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	w, err := writeNew(s.path(unitFile), text, 0o644)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	if !s.online {
		s.say("wrote %s (not enabled: with --root no service manager is contacted; systemctl --root %s enable %s enables it)", w.path, s.o.root, unitName)
		return nil
	}
	for _, args := range [][]string{{"daemon-reload"}, {"enable", unitName}} {
		if _, err := s.run("systemctl", args...); err != nil {
			w.undo()
			_, _ = s.run("systemctl", "daemon-reload")
			return fmt.Errorf("service install failed, and %s is removed again: %w (systemctl status %s and journalctl -xe say more; fix it and run farm service install again)",
				w.path, err, unitName)
		}
	}
	s.say("installed %s and enabled it (not started: farm service start, or systemctl start farm)", w.path)
	return nil
}

func (s *unixService) installSysV() error {
	text, err := scripts.Render(scripts.SysV, s.o.bin, s.o.config)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	w, err := writeNew(s.path(sysvFile), text, 0o755)
	if err != nil {
		return fmt.Errorf("service install: %w", err)
	}
	if !s.online {
		s.say("wrote %s (not linked into the runlevels: with --root no service manager is contacted)", w.path)
		return nil
	}
	how, err := s.registerSysV(true)
	if err != nil {
		w.undo()
		return fmt.Errorf("service install failed, and %s is removed again: %w (fix it and run farm service install --init sysv again)", w.path, err)
	}
	s.say("installed %s (%s; not started: farm service start, or %s start)", w.path, how, sysvFile)
	return nil
}

// registerSysV links the init script into the default runlevels (add) or
// removes the links, with whichever tool this distribution has.
func (s *unixService) registerSysV(add bool) (string, error) {
	switch {
	case hasTool("update-rc.d"):
		args := []string{"farm", "defaults"}
		if !add {
			args = []string{"-f", "farm", "remove"}
		}
		_, err := s.run("update-rc.d", args...)
		return "runlevel links by update-rc.d", err
	case hasTool("chkconfig"):
		arg := "--add"
		if !add {
			arg = "--del"
		}
		_, err := s.run("chkconfig", arg, "farm")
		return "runlevel links by chkconfig", err
	}
	return "no update-rc.d or chkconfig here: link it into the runlevels by hand to start it at boot", nil
}

func hasTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func (s *unixService) uninstall() error {
	if p := s.installedUnit(); p != "" && p != unitFile {
		return fmt.Errorf("service uninstall: %s belongs to the farm package: apt remove farm (or systemctl disable --now farm) instead", s.path(p))
	}
	switch {
	case exists(s.path(unitFile)):
		if s.online && s.systemd {
			if _, err := s.run("systemctl", "disable", "--now", unitName); err != nil {
				return fmt.Errorf("service uninstall: stopping and disabling failed, nothing removed: %w (systemctl status %s says why)", err, unitName)
			}
		}
		if err := os.Remove(s.path(unitFile)); err != nil {
			return fmt.Errorf("service uninstall: %w", err)
		}
		if s.online && s.systemd {
			if _, err := s.run("systemctl", "daemon-reload"); err != nil {
				s.say("warning: %v", err)
			}
		}
		s.say("uninstalled: removed %s", s.path(unitFile))
		return nil
	case exists(s.path(sysvFile)):
		if s.online {
			if _, err := s.run(s.path(sysvFile), "stop"); err != nil {
				return fmt.Errorf("service uninstall: stopping failed, nothing removed: %w", err)
			}
			if _, err := s.registerSysV(false); err != nil {
				return fmt.Errorf("service uninstall: removing the runlevel links failed, nothing removed: %w", err)
			}
		}
		if err := os.Remove(s.path(sysvFile)); err != nil {
			return fmt.Errorf("service uninstall: %w", err)
		}
		s.say("uninstalled: removed %s", s.path(sysvFile))
		return nil
	}
	return fmt.Errorf("service uninstall: not installed (no %s or %s)", s.path(unitFile), s.path(sysvFile))
}

// control runs start, stop or restart through the installed init system.
func (s *unixService) control(action string) error {
	switch s.kind() {
	case "sysv":
		if !exists(sysvFile) {
			return fmt.Errorf("service %s: not installed (no %s): farm service install --init sysv first", action, sysvFile)
		}
		out, err := s.run(sysvFile, action)
		if err != nil {
			return fmt.Errorf("service %s: %w", action, err)
		}
		fmt.Fprint(s.o.out, string(out))
		return nil
	default:
		if !s.unitInstalled() {
			return fmt.Errorf("service %s: not installed (no %s): farm service install first", action, unitFile)
		}
		if !s.systemd {
			return fmt.Errorf("service %s: %s is installed but systemd is not running on this host (PID 1 is %s)", action, s.installedUnit(), pid1())
		}
		if _, err := s.run("systemctl", action, unitName); err != nil {
			return fmt.Errorf("service %s: %w (journalctl -u farm -n 50 says why)", action, err)
		}
		s.say("service %s: done (systemctl status farm shows it)", action)
		return nil
	}
}

func (s *unixService) start() error   { return s.control("start") }
func (s *unixService) stop() error    { return s.control("stop") }
func (s *unixService) restart() error { return s.control("restart") }

func (s *unixService) status() (serviceState, error) {
	if s.kind() == "sysv" {
		if !exists(sysvFile) {
			s.say("farm: not installed (no %s)", sysvFile)
			return stateNotInstalled, nil
		}
		out, err := s.run(sysvFile, "status")
		fmt.Fprint(s.o.out, strings.TrimPrefix(string(out), "\n"))
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stateStopped, nil
		}
		if err != nil {
			return stateStopped, fmt.Errorf("service status: %w", err)
		}
		return stateRunning, nil
	}
	unit := s.installedUnit()
	if unit == "" {
		s.say("farm: not installed (no %s; farm service install installs it)", unitFile)
		return stateNotInstalled, nil
	}
	if !s.systemd {
		s.say("farm: %s is installed, but systemd is not running on this host (PID 1 is %s)", unit, pid1())
		return stateStopped, nil
	}
	// is-enabled and is-active exit non-zero for "disabled" and
	// "inactive": their output is the answer either way.
	en, _ := s.run("systemctl", "is-enabled", unitName)
	ac, _ := s.run("systemctl", "is-active", unitName)
	active := firstWord(ac)
	s.say("farm: %s, %s, %s (systemctl status farm and journalctl -u farm say more)", unit, firstWord(en), active)
	if active == "active" || active == "reloading" {
		return stateRunning, nil
	}
	return stateStopped, nil
}

func firstWord(b []byte) string {
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// written is a file install created, with the directories it had to make,
// so that a failed install removes exactly what it wrote.
type written struct {
	path string
	file bool     // path was written
	dirs []string // created, deepest last
}

func (w written) undo() {
	if w.file {
		_ = os.Remove(w.path)
	}
	for i := len(w.dirs) - 1; i >= 0; i-- {
		_ = os.Remove(w.dirs[i]) // only when empty
	}
}

// writeNew writes a file that must not exist yet, creating its missing
// parent directories; on any failure it removes what it made.
func writeNew(path, text string, mode fs.FileMode) (written, error) {
	w := written{path: path}
	var missing []string
	for d := filepath.Dir(path); !exists(d); d = filepath.Dir(d) {
		missing = append([]string{d}, missing...)
	}
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			w.undo()
			return written{}, asRoot(err)
		}
		w.dirs = append(w.dirs, d)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		w.undo()
		if errors.Is(err, fs.ErrExist) {
			return written{}, fmt.Errorf("%w: %s appeared while installing", errAlreadyInstalled, path)
		}
		return written{}, asRoot(err)
	}
	w.file = true
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Chmod(mode) // the umask may have narrowed it
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.undo()
		return written{}, err
	}
	return w, nil
}

// asRoot adds the usual fix to a permission error.
func asRoot(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (run it as root)", err)
	}
	return err
}
