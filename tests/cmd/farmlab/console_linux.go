package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/webfarm/farm/tests/lab"
)

// ConsolePortBase is the first port on this machine's loopback where the
// demo makes node i's console reachable (ConsolePortBase+i).
const consolePortBase = 19010

// demoConsole writes a demo password (its bcrypt hash for the agents) into the
// lab's run dir and returns the password and the hash file.
func demoConsole(l *lab.Lab) (password, hashFile string, err error) {
	raw := make([]byte, 9)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	password = "demo-" + base64.RawURLEncoding.EncodeToString(raw)
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", "", err
	}
	hashFile = filepath.Join(l.RunDir, "console.pass")
	if err := os.WriteFile(hashFile, append(h, '\n'), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(l.RunDir, "console.password"), []byte(password+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return password, hashFile, nil
}

// demoAgentConfig is what the demo adds to each node's config: the console
// password and an http checker on the node's nginx that restarts it.
func demoAgentConfig(l *lab.Lab, i int, hashFile string) string {
	return fmt.Sprintf(`
[console]
password_file = %q

[app]
start = %q
stop = %q

[[checker]]
name = "web"
type = "http"
target = "http://127.0.0.1/"
interval = "1s"
timeout = "500ms"
fall = 2
rise = 2
action = "restart"
`, hashFile, l.NginxStartScript(i), l.NginxStopScript(i))
}

// startConsoleProxies makes every node's console (127.0.0.1:9010 inside its
// namespace) reachable on this machine's loopback, port consolePortBase+i,
// through `farmlab console-proxy` processes the lab records (down stops them).
func startConsoleProxies(l *lab.Lab, prefix string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for i := 1; i <= len(l.Nodes); i++ {
		listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(consolePortBase+i))
		args := []string{self, "-prefix", prefix, "console-proxy", "-node", strconv.Itoa(i), "-listen", listen}
		if _, err := l.StartHostProc(fmt.Sprintf("console-proxy-web%d", i), args, filepath.Join(l.NodeDir(i), "console-proxy.log")); err != nil {
			return err
		}
	}
	return nil
}

// consoleProxy forwards TCP connections from listen (on this machine) to
// node's console inside its namespace, until ctx ends.
func consoleProxy(ctx context.Context, prefix string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("console-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	node := fs.Int("node", 1, "node index")
	listen := fs.String("listen", "127.0.0.1:19011", "address on this machine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := openLab(prefix)
	if err != nil {
		return err
	}
	dial := l.DialContext(l.Node(*node).NS, netip.Addr{})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			up, err := dial(dctx, "tcp", lab.ConsoleListen)
			cancel()
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
}
