//go:build !windows

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where NOTIFY_SOCKET points, as systemd does, and
// returns the messages as they arrive.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", path)
	msgs := make(chan string, 100)
	go func() {
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return msgs
}

// next returns the next message that is not a watchdog ping.
func next(t *testing.T, msgs <-chan string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				return m
			}
		case <-deadline:
			t.Fatalf("no message within %s", d)
		}
	}
}

// TestNotifier: nothing but watchdog pings before the node is ready, READY=1
// once it is, RELOADING=1/READY=1 around a reload, STOPPING=1 at shutdown,
// and WATCHDOG=1 at half of WATCHDOG_USEC all along.
func TestNotifier(t *testing.T) {
	msgs := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "100000") // 100ms: pings every 50ms
	n := newNotifier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n.reloading() {
		t.Error("reloading before READY=1 announced itself")
	}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	readyCalled := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.run(ctx, ready, func() { close(readyCalled) })
	}()

	pings := 0
	quiet := time.After(300 * time.Millisecond)
wait:
	for {
		select {
		case m := <-msgs:
			if m != "WATCHDOG=1" {
				t.Fatalf("before the node is ready: %q", m)
			}
			pings++
		case <-quiet:
			break wait
		}
	}
	if pings < 3 {
		t.Errorf("%d watchdog pings in 300ms at WATCHDOG_USEC=100000, want about 6", pings)
	}
	close(ready)
	if m := next(t, msgs, 2*time.Second); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("after ready: %q, want READY=1", m)
	}
	<-readyCalled
	if !n.reloading() {
		t.Fatal("reloading after READY=1 sent nothing")
	}
	if m := next(t, msgs, 2*time.Second); !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("reload: %q, want RELOADING=1 with MONOTONIC_USEC", m)
	}
	n.reloaded()
	if m := next(t, msgs, 2*time.Second); m != "READY=1" {
		t.Errorf("after reload: %q, want READY=1", m)
	}
	cancel()
	if m := next(t, msgs, 2*time.Second); !strings.HasPrefix(m, "STOPPING=1\n") {
		t.Errorf("at shutdown: %q, want STOPPING=1", m)
	}
	<-done
}

// TestNotifierWithoutSocket: outside systemd nothing is sent and nothing
// is logged.
func TestNotifierWithoutSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	var log bytes.Buffer
	n := newNotifier(slog.New(slog.NewTextHandler(&log, nil)))
	ready := make(chan struct{})
	close(ready)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.run(ctx, ready, nil) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	if log.Len() > 0 {
		t.Errorf("logged without NOTIFY_SOCKET: %s", log.String())
	}
}

func TestLogSink(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)

	buf.Reset()
	logSink{w: &buf, noTime: true}.logger("text", lv).Info("Node ready.", "node", "web1")
	if got := buf.String(); got != "level=INFO msg=\"Node ready.\" node=web1\n" {
		t.Errorf("text under the journal: %q, want no time", got)
	}

	buf.Reset()
	logSink{w: &buf}.logger("text", lv).Info("Node ready.")
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Errorf("text in a terminal: %q, want a time", buf.String())
	}

	buf.Reset()
	logSink{w: &buf, noTime: true}.logger("json", lv).Warn("Reload failed.", "err", "x")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("json: %v: %q", err, buf.String())
	}
	if rec["msg"] != "Reload failed." || rec["level"] != "WARN" || rec["time"] == nil {
		t.Errorf("json record %v: want msg, level and time (JSON keeps its time)", rec)
	}

	buf.Reset()
	lv.Set(slog.LevelWarn)
	logSink{w: &buf}.logger("text", lv).Info("hidden")
	if buf.Len() > 0 {
		t.Errorf("info logged at level warn: %q", buf.String())
	}
}

func TestResolveLevel(t *testing.T) {
	for _, c := range []struct {
		flag, config string
		want         slog.Level
	}{
		{"", "", slog.LevelInfo},
		{"", "debug", slog.LevelDebug},
		{"error", "debug", slog.LevelError},
		{"warn", "", slog.LevelWarn},
	} {
		got, err := logSink{level: c.flag}.resolveLevel(c.config)
		if err != nil || got != c.want {
			t.Errorf("--log-level %q, [log] level %q: %v %v, want %v", c.flag, c.config, got, err, c.want)
		}
	}
	if _, err := (logSink{level: "loud"}).resolveLevel("info"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad --log-level: %v", err)
	}
}

// TestJournalPriorities: on the journal's stream every line starts with its
// syslog priority.
func TestJournalPriorities(t *testing.T) {
	var buf bytes.Buffer
	log := logSink{noTime: true, emit: prioritized(&buf)}.logger("text", slog.LevelDebug)
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e", "k", "v")
	want := "<7>level=DEBUG msg=d\n<6>level=INFO msg=i\n<4>level=WARN msg=w\n<3>level=ERROR msg=e k=v\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestLevelHandler is the Windows event log's handler: each record once,
// formatted, under its own level, attributes of With kept.
func TestLevelHandler(t *testing.T) {
	type entry struct {
		level slog.Level
		msg   string
	}
	var got []entry
	sink := logSink{noTime: true, emit: func(l slog.Level, m string) { got = append(got, entry{l, m}) }}
	log := sink.logger("text", slog.LevelDebug).With("node", "web1")
	log.Error("A component failed; shutting down.", "err", "boom")
	log.Warn("Reload refused.")
	log.Debug("Scheduler sized.")
	want := []entry{
		{slog.LevelError, `level=ERROR msg="A component failed; shutting down." node=web1 err=boom`},
		{slog.LevelWarn, `level=WARN msg="Reload refused." node=web1`},
		{slog.LevelDebug, `level=DEBUG msg="Scheduler sized." node=web1`},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestUnderJournal(t *testing.T) {
	t.Setenv("INVOCATION_ID", "")
	t.Setenv("JOURNAL_STREAM", "")
	if underJournal() {
		t.Error("under the journal without JOURNAL_STREAM or INVOCATION_ID")
	}
	t.Setenv("JOURNAL_STREAM", "1:2")
	if underJournal() {
		t.Error("JOURNAL_STREAM naming another file counts as the journal")
	}
	if id, ok := fileID(os.Stderr); ok {
		t.Setenv("JOURNAL_STREAM", id)
		if !underJournal() {
			t.Error("JOURNAL_STREAM naming stderr does not count as the journal")
		}
	}
	t.Setenv("JOURNAL_STREAM", "")
	t.Setenv("INVOCATION_ID", "0123456789abcdef")
	if !underJournal() {
		t.Error("INVOCATION_ID set does not count as systemd's")
	}
}

func TestVersion(t *testing.T) {
	out, err := farm(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "farm ") || !strings.Contains(out, "\ngo:       go1.") || !strings.Contains(out, "revision: ") {
		t.Errorf("farm version:\n%s", out)
	}
	v := version{Module: "v1.2.3", Revision: "0123456789abcdef0123", Time: "2026-01-02T03:04:05Z", Modified: true, Go: "go1.26.0", Platform: "linux/amd64"}
	want := "farm v1.2.3\nrevision: 0123456789abcdef0123 (with uncommitted changes)\ndate:     2026-01-02T03:04:05Z (commit time of the revision)\ngo:       go1.26.0 linux/amd64\n"
	if v.String() != want {
		t.Errorf("version:\n%s\nwant:\n%s", v, want)
	}
	if got := v.short(); got != "v1.2.3 (0123456789ab)" {
		t.Errorf("short: %q", got)
	}
	v.Module = "v0.0.0-20260102030405-0123456789ab+dirty"
	if got := v.short(); got != v.Module {
		t.Errorf("short of a pseudo-version: %q, want it alone", got)
	}
}
