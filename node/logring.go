package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
)

// logRing keeps the node's newest log records, at info and above, in
// memory, for `relaymesh nodes logs` (ProtoLogs). What falls out of it, or
// was logged before a restart, is in the node's journal.
type logRing struct {
	mu      sync.Mutex
	buf     []core.LogRecord // circular, len ≤ size
	next    int
	size    int
	dropped int64
}

func newLogRing(size int) *logRing { return &logRing{size: size} }

func (r *logRing) add(rec core.LogRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) < r.size {
		r.buf = append(r.buf, rec)
		return
	}
	r.buf[r.next] = rec
	r.next = (r.next + 1) % r.size
	r.dropped++
}

// query returns the records after since at level or above, oldest first,
// at most max of the newest.
func (r *logRing) query(since time.Time, level slog.Level, max int) *core.LogsResponse {
	r.mu.Lock()
	defer r.mu.Unlock()
	resp := &core.LogsResponse{Records: []core.LogRecord{}, Dropped: r.dropped}
	n := len(r.buf)
	for i := range n {
		rec := r.buf[(r.next+i)%n]
		if i == 0 {
			resp.Oldest = rec.Time
		}
		var l slog.Level
		if err := l.UnmarshalText([]byte(rec.Level)); err != nil || l < level || !rec.Time.After(since) {
			continue
		}
		resp.Records = append(resp.Records, rec)
	}
	if len(resp.Records) > max {
		resp.Records = resp.Records[len(resp.Records)-max:]
	}
	return resp
}

// ringHandler is the slog.Handler that feeds a logRing.
type ringHandler struct {
	ring   *logRing
	attrs  []core.LogAttr
	prefix string // of keys, from WithGroup
}

func (h *ringHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *ringHandler) Handle(_ context.Context, rec slog.Record) error {
	out := core.LogRecord{Time: rec.Time.UTC(), Level: rec.Level.String(), Msg: cut(rec.Message)}
	out.Attrs = append(out.Attrs, h.attrs...)
	rec.Attrs(func(a slog.Attr) bool {
		out.Attrs = appendAttr(out.Attrs, h.prefix, a)
		return true
	})
	h.ring.add(out)
	return nil
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	cp := *h
	cp.attrs = append([]core.LogAttr(nil), h.attrs...)
	for _, a := range as {
		cp.attrs = appendAttr(cp.attrs, h.prefix, a)
	}
	return &cp
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	cp := *h
	cp.prefix = h.prefix + name + "."
	return &cp
}

func appendAttr(out []core.LogAttr, prefix string, a slog.Attr) []core.LogAttr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			out = appendAttr(out, p, g)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	return append(out, core.LogAttr{Key: prefix + a.Key, Value: cut(v.String())})
}

func cut(s string) string {
	if len(s) <= core.MaxLogText {
		return s
	}
	return strings.ToValidUTF8(s[:core.MaxLogText], "") + "…"
}

// teeHandler sends every record to both handlers.
type teeHandler struct{ a, b slog.Handler }

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t.a.Enabled(ctx, l) || t.b.Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, rec slog.Record) error {
	var err error
	if t.a.Enabled(ctx, rec.Level) {
		err = t.a.Handle(ctx, rec.Clone())
	}
	if t.b.Enabled(ctx, rec.Level) {
		if e := t.b.Handle(ctx, rec); err == nil {
			err = e
		}
	}
	return err
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.a.WithAttrs(as), t.b.WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t.a.WithGroup(name), t.b.WithGroup(name)}
}

// handleLogs answers the coordinator's ProtoLogs request.
func (n *Node) handleLogs(_ context.Context, _ peer.ID, req *core.LogsRequest) (*core.LogsResponse, error) {
	level := slog.LevelInfo
	if req.Level != "" {
		if err := level.UnmarshalText([]byte(req.Level)); err != nil {
			return nil, fmt.Errorf("node: logs: level %q: want debug, info, warn or error", req.Level)
		}
	}
	max := req.Max
	if max <= 0 || max > core.MaxLogRecords {
		max = core.MaxLogRecords
	}
	return n.logs.query(req.Since, level, max), nil
}

// fromCoordinator admits only the pinned coordinator's streams.
func (n *Node) fromCoordinator(p peer.ID) bool { return p == n.coord.ID }
