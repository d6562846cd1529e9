package site

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
)

// newStdLogger returns a *log.Logger for memberlist that writes each line to
// l at debug level. memberlist's own level ("[WARN]") is kept as an
// attribute: a crashed peer makes memberlist warn on every probe, which is
// expected here and must not spam info-level logs.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l: l}, "", 0)
}

type slogWriter struct{ l *slog.Logger }

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	if !w.l.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	line := bytes.TrimRight(p, "\n")
	level := ""
	if len(line) > 0 && line[0] == '[' {
		if i := bytes.IndexByte(line, ']'); i > 0 {
			level = string(line[1:i])
			line = bytes.TrimLeft(line[i+1:], " ")
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.l.Debug(string(line), "component", "memberlist", "memberlist_level", level)
	return len(p), nil
}
