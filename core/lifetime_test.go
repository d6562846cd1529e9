package core

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestVerifierMaxLifetime: with the maximum pinned at enrollment, a deploy
// order valid for longer is refused before anything is recorded; one at
// the maximum passes; a cancel order is not bounded.
func TestVerifierMaxLifetime(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t0, 0)
	v.MaxLifetime = 7 * 24 * time.Hour
	long := signed(t, coordKey, func(o *Order) { o.Expires = o.NotBefore.Add(10 * 365 * 24 * time.Hour) })
	_, err := v.Accept(long)
	if !errors.Is(err, ErrBadOrder) || !strings.Contains(err.Error(), "above the maximum of 168h0m0s pinned at enrollment") {
		t.Fatalf("a 10-year order: %v, want ErrBadOrder naming the pinned maximum", err)
	}
	if h := highest(t, v); h != 0 {
		t.Fatalf("refused order moved the highest to %d", h)
	}
	atMax := signed(t, coordKey, func(o *Order) { o.Seq = 12; o.Expires = o.NotBefore.Add(7 * 24 * time.Hour) })
	if _, err := v.Accept(atMax); err != nil {
		t.Fatalf("an order at the maximum: %v", err)
	}
	cancel := signed(t, coordKey, func(o *Order) {
		o.Kind, o.ID, o.Seq, o.Cancels = KindCancel, "cancel-1", 13, "dep-42"
		o.Packages, o.Mode, o.Reboot, o.Window, o.Timeout, o.Prefetch = nil, "", "", "", 0, false
		o.Expires = o.NotBefore.Add(8 * 24 * time.Hour)
	})
	if _, err := v.Accept(cancel); err != nil {
		t.Fatalf("a cancel order outliving the maximum: %v", err)
	}
}
