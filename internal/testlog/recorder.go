package testlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Record is one logged line as a Recorder keeps it: the attributes given
// to With come first, in order, then the line's own; group names prefix
// the keys as "group.key".
type Record struct {
	Level slog.Level
	Msg   string
	Attrs []slog.Attr
}

// Keys are the record's attribute keys in order.
func (r Record) Keys() []string {
	out := make([]string, len(r.Attrs))
	for i, a := range r.Attrs {
		out[i] = a.Key
	}
	return out
}

// Value is the value of key as a string, "" when absent.
func (r Record) Value(key string) string {
	for _, a := range r.Attrs {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

// Recorder is a slog.Handler that keeps every record, for tests that
// check what was logged (and that it reads well: no key twice).
type Recorder struct {
	store *recStore
	attrs []slog.Attr
	group string
	level slog.Level
}

type recStore struct {
	mu   sync.Mutex
	recs []Record
}

// NewRecorder keeps records at level and above.
func NewRecorder(level slog.Level) *Recorder {
	return &Recorder{store: &recStore{}, level: level}
}

// Enabled implements slog.Handler.
func (r *Recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := slices.Clone(r.attrs)
	rec.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, r.flatten(a)...)
		return true
	})
	r.store.mu.Lock()
	r.store.recs = append(r.store.recs, Record{Level: rec.Level, Msg: rec.Message, Attrs: attrs})
	r.store.mu.Unlock()
	return nil
}

func (r *Recorder) flatten(a slog.Attr) []slog.Attr {
	key := a.Key
	if r.group != "" {
		key = r.group + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		sub := &Recorder{group: key}
		var out []slog.Attr
		for _, g := range a.Value.Group() {
			out = append(out, sub.flatten(g)...)
		}
		return out
	}
	return []slog.Attr{{Key: key, Value: a.Value.Resolve()}}
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(as []slog.Attr) slog.Handler {
	n := *r
	n.attrs = slices.Clone(r.attrs)
	for _, a := range as {
		n.attrs = append(n.attrs, r.flatten(a)...)
	}
	return &n
}

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(name string) slog.Handler {
	n := *r
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

// Records are the records so far.
func (r *Recorder) Records() []Record {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	return slices.Clone(r.store.recs)
}

// Messages are the records so far with message msg.
func (r *Recorder) Messages(msg string) []Record {
	var out []Record
	for _, rec := range r.Records() {
		if rec.Msg == msg {
			out = append(out, rec)
		}
	}
	return out
}

// Repeated are the records that carry a key more than once, each with
// the first repeated key.
func (r *Recorder) Repeated() map[string]Record {
	out := map[string]Record{}
	for _, rec := range r.Records() {
		seen := map[string]bool{}
		for _, k := range rec.Keys() {
			if seen[k] {
				out[k] = rec
				break
			}
			seen[k] = true
		}
	}
	return out
}

// Tee is a handler that sends every record to each of hs.
func Tee(hs ...slog.Handler) slog.Handler { return tee(hs) }

type tee []slog.Handler

func (t tee) Enabled(ctx context.Context, l slog.Level) bool {
	return slices.ContainsFunc(t, func(h slog.Handler) bool { return h.Enabled(ctx, l) })
}

func (t tee) Handle(ctx context.Context, rec slog.Record) error {
	for _, h := range t {
		if h.Enabled(ctx, rec.Level) {
			if err := h.Handle(ctx, rec.Clone()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t tee) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (t tee) WithGroup(name string) slog.Handler {
	out := make(tee, len(t))
	for i, h := range t {
		out[i] = h.WithGroup(name)
	}
	return out
}
