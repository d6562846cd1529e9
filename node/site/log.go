package site

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"sync/atomic"
)

// newStdLogger returns a *log.Logger for memberlist that writes each line to
// l at debug level. memberlist's own level ("[WARN]") is kept as an
// attribute: a crashed peer makes memberlist warn on every probe, which is
// expected here and must not spam info-level logs. Lines saying a packet
// or stream could not be decrypted (no key of the ring opens it) are
// counted in undecryptable.
func newStdLogger(l *slog.Logger, undecryptable *atomic.Uint64) *log.Logger {
	return log.New(slogWriter{l: l, undecryptable: undecryptable}, "", 0)
}

type slogWriter struct {
	l             *slog.Logger
	undecryptable *atomic.Uint64
}

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	if w.undecryptable != nil && bytes.Contains(bytes.ToLower(p), []byte("decrypt")) {
		w.undecryptable.Add(1)
	}
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
