package core

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// TestSeqJumpCannotFreezeNode: one authentic order signed with sequence
// 2^64-1 (or anything more than MaxSeqJump ahead) is refused and leaves the
// highest where it was, so the next real order is still accepted.
func TestSeqJumpCannotFreezeNode(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t0, 0)
	accept := func(id string, seq uint64) error {
		_, err := v.Accept(signed(t, coordKey, func(o *Order) { o.ID, o.Seq = id, seq }))
		return err
	}
	if err := accept("first", 100); err != nil {
		t.Fatalf("first order: %v", err)
	}
	for _, seq := range []uint64{math.MaxUint64, 100 + MaxSeqJump + 1} {
		err := accept("huge", seq)
		if !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "more than 1048576 above the highest accepted (100)") {
			t.Fatalf("sequence %d: %v, want ErrReplay naming the bound", seq, err)
		}
		if h := highest(t, v); h != 100 {
			t.Fatalf("after sequence %d: highest %d, want 100", seq, h)
		}
	}
	if err := accept("next", 101); err != nil {
		t.Fatalf("the next real order after the huge one: %v", err)
	}
	if err := accept("edge", 101+MaxSeqJump); err != nil {
		t.Fatalf("an order exactly MaxSeqJump ahead: %v", err)
	}
}
