package core

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// windowStep is one order offered to a verifier: its sequence, and either
// nil (accepted) or the substring of the ErrReplay refusal; high is the
// highest sequence after the step.
type windowStep struct {
	seq     uint64
	refusal string
	high    uint64
}

const (
	replayedMsg = "was already accepted"
	tooOldMsg   = "is older than the replay window"
)

// windowSteps walks the replay window: above the highest, inside the window
// unseen and seen, at and below the floor, the highest never going down.
var windowSteps = []windowStep{
	{10, "", 10},
	{10, replayedMsg, 10},
	{5, "", 10}, // overtaken by 10: inside the window, not accepted before
	{5, replayedMsg, 10},
	{7, "", 10},
	{11, "", 11},
	{ReplayWindow + 20, "", ReplayWindow + 20}, // the floor is now 20
	{20, tooOldMsg, ReplayWindow + 20},
	{21, "", ReplayWindow + 20},
	{21, replayedMsg, ReplayWindow + 20},
	{11, tooOldMsg, ReplayWindow + 20}, // accepted before, now below the window
	{3, tooOldMsg, ReplayWindow + 20},
	{ReplayWindow + 19, "", ReplayWindow + 20},
	{ReplayWindow + 20, replayedMsg, ReplayWindow + 20},
	{ReplayWindow + 19, replayedMsg, ReplayWindow + 20},
}

// windowSeen is what windowSteps leave recorded once the floor moved to
// 20: the accepted sequences above it; the others are pruned.
var windowSeen = []uint64{21, ReplayWindow + 19, ReplayWindow + 20}

// runWindowSteps offers every step to v, through Accept when check is nil,
// else through Check followed by check (the node's check-then-record).
func runWindowSteps(t *testing.T, v *Verifier, check func(o *Order)) {
	t.Helper()
	key := KeyID(pubOf(coordKey))
	for i, st := range windowSteps {
		env := signed(t, coordKey, func(o *Order) { o.Seq = st.seq; o.ID = fmt.Sprintf("dep-%d", i) })
		var err error
		if check == nil {
			_, err = v.Accept(env)
		} else {
			var o *Order
			if o, err = v.Check(env); err == nil {
				check(o)
			}
		}
		switch {
		case st.refusal == "" && err != nil:
			t.Fatalf("step %d, sequence %d: refused: %v", i, st.seq, err)
		case st.refusal != "" && (!errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), st.refusal)):
			t.Fatalf("step %d, sequence %d: %v, want ErrReplay %q", i, st.seq, err, st.refusal)
		}
		if h, err := v.Seq.HighestSeq(key); err != nil || h != st.high {
			t.Fatalf("step %d, sequence %d: highest %d (%v), want %d", i, st.seq, h, err, st.high)
		}
	}
}

func TestReplayWindowMemSeqStore(t *testing.T) {
	t.Parallel()
	store := &MemSeqStore{}
	v := &Verifier{Keys: PinnedKeys(pubOf(coordKey)), Self: verifierSelf, Seq: store, Now: func() time.Time { return t0.Add(time.Hour) }}
	runWindowSteps(t, v, nil)
	got := slices.Sorted(maps.Keys(store.seen[KeyID(pubOf(coordKey))]))
	if !slices.Equal(got, windowSeen) {
		t.Errorf("recorded sequences %v, want %v (those at or below the floor pruned)", got, windowSeen)
	}
}

func TestReplayWindowMessages(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	v := newTestVerifier(now, 70000)
	_, err := v.Accept(signed(t, coordKey, func(o *Order) { o.Seq = 3 }))
	checkErr(t, err, ErrReplay, "order dep-42: sequence 3 is older than the replay window (highest 70000, window 65536)")
	_, err = v.Accept(signed(t, coordKey, func(o *Order) { o.Seq = 70000 }))
	checkErr(t, err, ErrReplay, "sequence 70000 was already accepted")
	// The floor is 70000-65536 = 4464: 4465 is the oldest still accepted.
	if _, err := v.Accept(signed(t, coordKey, func(o *Order) { o.Seq = 4465 })); err != nil {
		t.Fatal(err)
	}
	_, err = v.Accept(signed(t, coordKey, func(o *Order) { o.Seq = 4465 }))
	checkErr(t, err, ErrReplay, "order dep-42: sequence 4465 was already accepted (highest 70000)")
	_, err = v.Accept(signed(t, coordKey, func(o *Order) { o.Seq = 4464 }))
	checkErr(t, err, ErrReplay, "sequence 4464 is older")
}

func TestMemSeqStoreWindow(t *testing.T) {
	t.Parallel()
	var s MemSeqStore
	for _, n := range []uint64{5, 3, 9, 1} {
		if err := s.RecordSeq("k", n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []uint64{1, 3, 5, 9} {
		if ok, _ := s.Seen("k", n); !ok {
			t.Errorf("%d not seen", n)
		}
	}
	if ok, _ := s.Seen("k", 4); ok {
		t.Error("4 seen, never recorded")
	}
	if ok, _ := s.Seen("other", 5); ok {
		t.Error("another key sees 5")
	}
	// An old sequence recorded below the floor is not kept.
	if err := s.RecordSeq("k", ReplayWindow+9); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSeq("k", 2); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.HighestSeq("k"); h != ReplayWindow+9 {
		t.Errorf("highest %d", h)
	}
	if got := slices.Sorted(maps.Keys(s.seen["k"])); !slices.Equal(got, []uint64{ReplayWindow + 9}) {
		t.Errorf("after the floor moved to 9: recorded %v", got)
	}
}

func TestWindowFloor(t *testing.T) {
	t.Parallel()
	for high, want := range map[uint64]uint64{0: 0, 1: 0, ReplayWindow - 1: 0, ReplayWindow: 0, ReplayWindow + 1: 1, 1 << 40: 1<<40 - ReplayWindow} {
		if got := WindowFloor(high); got != want {
			t.Errorf("WindowFloor(%d) = %d, want %d", high, got, want)
		}
	}
}
