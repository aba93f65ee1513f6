package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/webfarm/farm/checkers"
)

// CheckHost checks the config against this host: what Validate cannot see
// but the agent needs at start, so `farm check` says it before the agent
// fails on it. Call it on a valid config (from Parse or Load). It reports
// every problem at once, joined with errors.Join, each a *FieldError naming
// its key:
//
//   - gossip.key_file can be read, is base64 and holds a 16, 24 or 32-byte
//     key, and (not on Windows) group and others have no access to it;
//   - every vip[i].interface, and the target of every interface checker,
//     is an interface of this host;
//   - console.password_file, when set, can be read and holds a bcrypt hash;
//   - app.start and app.stop, when set, can run: a file must not be a
//     directory; for a command line, its program, when written as an
//     absolute path, must exist and (not on Windows) be executable;
//   - state_dir, when it exists, is a directory (the agent creates it).
//
// What it leaves alone, and why: a program named without a path in a
// command line (the agent's PATH, a service's, is not farm check's); a
// script file without the execute bit (it runs under /bin/sh by design, see
// checkers/script.Run); relative paths (they depend on the agent's working
// directory); process and script checker targets (a pid file appears only
// once the application runs; a script target may be a command line).
//
// Run it as the agent's user (root): files only root may read are reported
// as unreadable otherwise.
func (c *Config) CheckHost() error {
	var p problems
	c.checkKeyFile(&p)
	c.checkInterfaces(&p)
	if f := c.Console.PasswordFile; f != "" {
		checkPasswordFile(&p, f)
	}
	checkScript(&p, "app.start", c.App.Start)
	checkScript(&p, "app.stop", c.App.Stop)
	checkStateDir(&p, c.StateDir)
	return errors.Join(p...)
}

func (c *Config) checkKeyFile(p *problems) {
	const key = "gossip.key_file"
	path := c.Gossip.KeyFile
	if path == "" {
		return // Validate reports it
	}
	if _, err := readKey(path); err != nil {
		p.add(key, "%s: %v%s", path, err, asRootHint(err))
	}
	// The mode matters whatever the file holds: a key being fixed in place
	// keeps its mode.
	if fi, err := os.Stat(path); err == nil && othersCanAccess(fi) {
		p.add(key, "%s: group or others can access it (mode %04o), and whoever reads the key can join the farm: chmod 600 %s",
			path, fi.Mode().Perm(), path)
	}
}

// checkInterfaces checks every interface the config names.
func (c *Config) checkInterfaces(p *problems) {
	check := func(key, name string) {
		if name == "" {
			return // Validate reports it
		}
		if _, err := net.InterfaceByName(name); err == nil {
			return
		}
		p.add(key, "%q is not an interface of this host (it has %s; %s)", name, interfaceNames(), interfacesHint)
	}
	for i, v := range c.VIP {
		check(fmt.Sprintf("vip[%d].interface", i), v.Interface)
	}
	for i, k := range c.Checker {
		if k.Type == checkers.TypeInterface {
			check(fmt.Sprintf("checker[%d].target", i), k.Target)
		}
	}
}

// interfaceNames lists this host's interfaces for a message, at most 16 of
// them (a host with containers has hundreds).
func interfaceNames() string {
	const most = 16
	ifs, err := net.Interfaces()
	if err != nil {
		return "none that can be listed: " + err.Error()
	}
	names := make([]string, 0, min(len(ifs), most))
	for _, i := range ifs[:min(len(ifs), most)] {
		names = append(names, i.Name)
	}
	s := strings.Join(names, ", ")
	if len(ifs) > most {
		s += fmt.Sprintf(" and %d more", len(ifs)-most)
	}
	return s
}

func checkPasswordFile(p *problems, path string) {
	const key = "console.password_file"
	hint := "farm passwd makes one: farm passwd > " + path
	b, err := os.ReadFile(path)
	if err != nil {
		p.add(key, "%s: cannot read: %v (%s)%s", path, pathErr(err), hint, asRootHint(err))
		return
	}
	if _, err := bcrypt.Cost([]byte(strings.TrimSpace(string(b)))); err != nil {
		p.add(key, "%s: does not hold a bcrypt hash (%s)", path, hint)
	}
}

// checkScript checks that an app script can run, the way checkers/script.Run
// runs it: a value naming a file runs that file; any other value is a
// command line, whose first word is the program.
func checkScript(p *problems, key, value string) {
	if strings.TrimSpace(value) == "" {
		return
	}
	if fi, err := os.Stat(value); err == nil {
		if fi.IsDir() {
			p.add(key, "%s is a directory, not a script", value)
		}
		return
	}
	prog := firstWord(value)
	if !isAbs(prog) {
		return // found through PATH, or relative to the agent's directory
	}
	fi, err := os.Stat(prog)
	switch {
	case err != nil:
		what := "does not exist"
		if !errors.Is(err, fs.ErrNotExist) {
			what = "cannot be read: " + pathErr(err).Error()
		}
		if prog == value {
			p.add(key, "%s %s (install the script, or fix the path)", prog, what)
		} else {
			p.add(key, "%q: its program %s %s (install it, or fix the path)", value, prog, what)
		}
	case fi.IsDir():
		p.add(key, "%q: its program %s is a directory", value, prog)
	case !canExecute(fi):
		p.add(key, "%q: its program %s is not executable, and a command line runs it directly: chmod +x %s", value, prog, prog)
	}
}

// firstWord returns the program of a command line: the first word, or the
// quoted text when the line starts with a quote.
func firstWord(line string) string {
	line = strings.TrimSpace(line)
	if q := line[0]; q == '"' || q == '\'' {
		if end := strings.IndexByte(line[1:], q); end >= 0 {
			return line[1 : end+1]
		}
	}
	if i := strings.IndexAny(line, " \t"); i >= 0 {
		return line[:i]
	}
	return line
}

func checkStateDir(p *problems, dir string) {
	if dir == "" {
		return // Validate reports it
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The agent creates it.
	case err != nil:
		p.add("state_dir", "%s: %v%s", dir, pathErr(err), asRootHint(err))
	case !fi.IsDir():
		p.add("state_dir", "%s exists and is not a directory (move it away, or choose another state_dir)", dir)
	}
}

// pathErr drops the operation and path from a *fs.PathError, which the
// messages above already name.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// asRootHint explains a permission error: farm check run as an ordinary
// user cannot read what only the agent's user (root) may.
func asRootHint(err error) string {
	if errors.Is(err, fs.ErrPermission) {
		return "; run farm check as the agent's user"
	}
	return ""
}
