package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
)

// logSink says where the agent's log goes and what overrides the config's
// [log] section. Precedence for the level: --log-level, then [log] level,
// then info; the format comes from [log] format alone (text by default).
type logSink struct {
	// level is --log-level; "" leaves the level to the config.
	level string
	// w receives the formatted records (stderr).
	w io.Writer
	// emit, when set, receives each formatted record instead of w, with its
	// level (the Windows event log has a level per entry).
	emit func(slog.Level, string)
	// noTime leaves the time out of text records: the journal stamps every
	// line itself.
	noTime bool
}

// stderrSink is the sink of `farm agent` run from a terminal or by systemd.
// When stderr is the journal's stream, each line starts with its syslog
// priority (<3> error ... <7> debug), which journald takes as the entry's
// priority (journalctl -p warning shows warnings and errors only).
func stderrSink(level string) logSink {
	s := logSink{level: level, w: os.Stderr, noTime: underJournal()}
	if journalStream() {
		s.emit = prioritized(os.Stderr)
	}
	return s
}

// prioritized writes each record as one line prefixed with its syslog
// priority, as sd-daemon(3) describes for services logging to stderr.
func prioritized(w io.Writer) func(slog.Level, string) {
	return func(l slog.Level, msg string) {
		p := 6 // info
		switch {
		case l >= slog.LevelError:
			p = 3
		case l >= slog.LevelWarn:
			p = 4
		case l < slog.LevelInfo:
			p = 7
		}
		// One Write per record: os.File serializes writers.
		_, _ = io.WriteString(w, "<"+strconv.Itoa(p)+">"+msg+"\n")
	}
}

// parseLevel reads a level name; key names the setting for the error.
func parseLevel(key, s string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%s %q: use debug, info, warn or error", key, s)
	}
	return lv, nil
}

// resolveLevel is the level the agent logs at for a config's [log] level.
func (s logSink) resolveLevel(configLevel string) (slog.Level, error) {
	if s.level != "" {
		return parseLevel("--log-level", s.level)
	}
	if configLevel == "" {
		return slog.LevelInfo, nil
	}
	return parseLevel("log.level", configLevel)
}

// logger makes the agent's logger in format ("text" or "json") at the
// level lv holds, which a reload may change.
func (s logSink) logger(format string, lv slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv}
	if s.noTime && format != "json" {
		opts.ReplaceAttr = dropTime
	}
	if s.emit != nil {
		return slog.New(newLevelHandler(format, opts, s.emit))
	}
	return slog.New(newHandler(s.w, format, opts))
}

func newHandler(w io.Writer, format string, opts *slog.HandlerOptions) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// dropTime removes the record's time (top level only).
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// underJournal reports whether stderr goes to the systemd journal, which
// adds its own timestamps: JOURNAL_STREAM names stderr's device and inode
// (checked where the platform can), or INVOCATION_ID says systemd started
// this process.
func underJournal() bool {
	if os.Getenv("JOURNAL_STREAM") != "" {
		return journalStream()
	}
	return os.Getenv("INVOCATION_ID") != ""
}

// journalStream reports whether JOURNAL_STREAM names stderr (on Windows,
// which has no journal: never).
func journalStream() bool {
	js := os.Getenv("JOURNAL_STREAM")
	id, ok := fileID(os.Stderr)
	return js != "" && ok && id == js
}

// levelHandler formats each record like the text or JSON handler and hands
// it, with its level, to emit: the Windows event log files every entry under
// a level of its own.
type levelHandler struct {
	h    slog.Handler
	mu   *sync.Mutex
	buf  *bytes.Buffer
	emit func(slog.Level, string)
}

func newLevelHandler(format string, opts *slog.HandlerOptions, emit func(slog.Level, string)) *levelHandler {
	buf := new(bytes.Buffer)
	return &levelHandler{h: newHandler(buf, format, opts), mu: new(sync.Mutex), buf: buf, emit: emit}
}

func (h *levelHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *levelHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	h.buf.Reset()
	err := h.h.Handle(ctx, r)
	msg := string(bytes.TrimRight(h.buf.Bytes(), "\n"))
	h.mu.Unlock()
	if err != nil {
		return err
	}
	h.emit(r.Level, msg)
	return nil
}

// WithAttrs and WithGroup share the buffer and its lock: the derived
// handlers of slog's handlers keep writing to the same writer.
func (h *levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &levelHandler{h: h.h.WithAttrs(as), mu: h.mu, buf: h.buf, emit: h.emit}
}

func (h *levelHandler) WithGroup(name string) slog.Handler {
	return &levelHandler{h: h.h.WithGroup(name), mu: h.mu, buf: h.buf, emit: h.emit}
}
