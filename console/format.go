package console

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func joinStrings(s []string) string { return strings.Join(s, ", ") }

// stateClass is the CSS class of a node or deployment state.
func stateClass(s any) string {
	var v string
	switch x := s.(type) {
	case core.State:
		v = string(x)
	case string:
		v = x
	}
	switch {
	case v == string(core.StateSuccess), v == "COMPLETED":
		return "ok"
	case strings.HasPrefix(v, "ERR_"), v == "INCOMPLETE":
		return "bad"
	case v == string(core.StateCancelled), v == "CANCELLED":
		return "off"
	}
	return "run"
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}

func (k *Console) when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func ratio(a, b int64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// duration prints d rounded to what a reader needs.
func duration(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// tail keeps the last lines of an install's output.
func tail(s string, lines, bytes int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > bytes {
		s = "…" + s[len(s)-bytes:]
	}
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = append([]string{"…"}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

// splitList reads a comma- or space-separated field.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
}
