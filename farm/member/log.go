package member

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newSerfLogger turns serf's and memberlist's "[LEVEL] text" lines into slog
// records at the matching level, so the agent has one log format.
func newSerfLogger(l *slog.Logger) *log.Logger {
	return log.New(serfWriter{l.With("component", "gossip")}, "", 0)
}

type serfWriter struct{ l *slog.Logger }

func (w serfWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for prefix, lv := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if bytes.HasPrefix(line, []byte(prefix)) {
			level = lv
			line = bytes.TrimSpace(line[len(prefix):])
			break
		}
	}
	w.l.Log(context.Background(), level, string(line))
	return len(p), nil
}
