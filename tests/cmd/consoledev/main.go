// Command consoledev serves the web console (console.New) over a fake farm
// on loopback, so the console's HTML, CSS and script can be worked on
// without a lab: three nodes (more with -nodes) whose states change when
// acted on, a real owner table, events, checkers and warnings.
//
//	go run ./tests/cmd/consoledev -listen 127.0.0.1:8099 -password dev
//
// With -shoot DIR it also drives headless chromium through the console
// (log in, open a what-if, drain a node, narrow the window to a phone's) and
// saves PNG screenshots in DIR, then exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/webfarm/farm/console"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8099", "address to serve the console on (loopback)")
	password := flag.String("password", "dev", "console password")
	nodes := flag.Int("nodes", 3, "number of fake nodes (1..12)")
	busy := flag.Bool("busy", false, "change the fake farm by itself every few seconds (a node fails and recovers, weights change)")
	warn := flag.Bool("warn", true, "show a frame-delivery warning for the last node")
	mixed := flag.Bool("mixed", false, "start with nodes in every state: web2 draining, web3 failed, web4 stopped, web5 down, web6 suspect (use -nodes 6 or more)")
	shoot := flag.String("shoot", "", "take screenshots with headless chromium into this directory, then exit")
	chromium := flag.String("chromium", "/usr/bin/chromium", "chromium binary for -shoot")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*listen, *password, *nodes, *busy, *warn, *mixed, *shoot, *chromium, log); err != nil {
		fmt.Fprintln(os.Stderr, "consoledev:", err)
		os.Exit(1)
	}
}

func run(listen, password string, nodes int, busy, warn, mixed bool, shoot, chromium string, log *slog.Logger) error {
	if nodes < 1 || nodes > 12 {
		return fmt.Errorf("-nodes %d: want 1..12", nodes)
	}
	dir, err := os.MkdirTemp("", "consoledev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	pwFile := filepath.Join(dir, "console.pass")
	if err := os.WriteFile(pwFile, hash, 0o600); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	f := newFakeFarm(nodes, warn)
	if mixed {
		f.mix()
	}
	srv, err := console.New(console.Options{Listen: listen, PasswordFile: pwFile, StateDir: dir}, f, log)
	if err != nil {
		return err
	}
	go f.run(ctx, busy)
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	fmt.Fprintf(os.Stderr, "console: http://%s/  password: %s\n", listen, password)

	if shoot != "" {
		time.Sleep(300 * time.Millisecond)
		err := screenshots(ctx, "http://"+listen, password, shoot, chromium, f)
		stop()
		<-errc
		return err
	}
	return <-errc
}
