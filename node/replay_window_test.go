package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

const (
	replayedMsg = "was already accepted"
	tooOldMsg   = "is older than the replay window"
)

// windowSteps is core's replay-window walk (core/replay_window_test.go)
// over the node's badger-backed store: each order's sequence, "" when it
// is accepted or the ErrReplay refusal it gets, and the highest after it.
var windowSteps = []struct {
	seq     uint64
	refusal string
	high    uint64
}{
	{10, "", 10},
	{10, replayedMsg, 10},
	{5, "", 10}, // overtaken by 10: inside the window, not accepted before
	{5, replayedMsg, 10},
	{7, "", 10},
	{11, "", 11},
	{core.ReplayWindow + 20, "", core.ReplayWindow + 20}, // the floor is now 20
	{20, tooOldMsg, core.ReplayWindow + 20},
	{21, "", core.ReplayWindow + 20},
	{21, replayedMsg, core.ReplayWindow + 20},
	{11, tooOldMsg, core.ReplayWindow + 20}, // accepted before, now below the window
	{3, tooOldMsg, core.ReplayWindow + 20},
	{core.ReplayWindow + 19, "", core.ReplayWindow + 20},
	{core.ReplayWindow + 20, replayedMsg, core.ReplayWindow + 20},
	{core.ReplayWindow + 19, replayedMsg, core.ReplayWindow + 20},
}

// windowSeen is what windowSteps leave recorded: the accepted sequences
// above the final floor, 20; those at or below it are pruned.
var windowSeen = []uint64{21, core.ReplayWindow + 19, core.ReplayWindow + 20}

// openKV opens a badger store on dir. A reopen right after a close found
// the directory lock still held once in -count=10 -race runs, likely by a
// child another test was forking at that moment (it holds a copy of the
// descriptor until it execs), so a lock error is retried briefly.
func openKV(t *testing.T, dir string) *cache.Badger {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := cache.OpenBadger(cache.Config{Dir: dir})
		if err == nil {
			return st
		}
		if !strings.Contains(err.Error(), "directory lock") || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// seenSeqs lists the accepted sequences recorded for keyID.
func seenSeqs(t *testing.T, kv cache.KV, keyID string) []uint64 {
	t.Helper()
	var out []uint64
	err := kv.Scan(seenPrefix(keyID), func(key string, _ []byte) error {
		v, err := strconv.ParseUint(key[len(seenPrefix(keyID)):], 10, 64)
		out = append(out, v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func windowOrder(t *testing.T, key ed25519.PrivateKey, id string, seq uint64, self string) *core.Envelope {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	o := &core.Order{Schema: core.OrderSchema, Kind: core.KindDeploy, ID: id, Seq: seq,
		IssuedAt: now, NotBefore: now.Add(-time.Minute), Expires: now.Add(time.Hour),
		Packages: []string{core.FragmentCID([]byte("manifest")).String()}, Targets: []string{self}, Priority: 5,
		Mode: core.ModeOneByOne, Reboot: core.RebootNever}
	e, err := core.SignOrder(o, key)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSeqStoreReplayWindow runs the replay-window walk over seqStore, both
// the way intake does (Check, then recordSeq in the transaction that stores
// the order) and through Verifier.Accept (RecordSeq), and checks that the
// records are pruned and survive a reopen.
func TestSeqStoreReplayWindow(t *testing.T) {
	t.Parallel()
	key, err := core.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	keyID := core.KeyID(pub)
	const self = "node-b"
	for _, viaIntake := range []bool{true, false} {
		t.Run(fmt.Sprintf("intake=%v", viaIntake), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			st := openKV(t, dir)
			seqs := seqStore{st.KV()}
			v := &core.Verifier{Keys: core.PinnedKeys(pub), Self: self, Seq: seqs}
			for i, step := range windowSteps {
				env := windowOrder(t, key, fmt.Sprintf("o-%d", i), step.seq, self)
				var err error
				if viaIntake {
					var o *core.Order
					if o, err = v.Check(env); err == nil {
						stale, err := seqs.stale(keyID, o.Seq)
						if err != nil {
							t.Fatal(err)
						}
						err = st.KV().Update(func(tx cache.KVTx) error {
							return errors.Join(tx.Set(keyOrder+o.ID, env.Payload), recordSeq(tx, keyID, o.Seq, stale))
						})
						if err != nil {
							t.Fatal(err)
						}
					}
				} else {
					_, err = v.Accept(env)
				}
				switch {
				case step.refusal == "" && err != nil:
					t.Fatalf("step %d, sequence %d: refused: %v", i, step.seq, err)
				case step.refusal != "" && (!errors.Is(err, core.ErrReplay) || !strings.Contains(err.Error(), step.refusal)):
					t.Fatalf("step %d, sequence %d: %v, want ErrReplay %q", i, step.seq, err, step.refusal)
				}
				if h, err := seqs.HighestSeq(keyID); err != nil || h != step.high {
					t.Fatalf("step %d, sequence %d: highest %d (%v), want %d", i, step.seq, h, err, step.high)
				}
			}
			if got := seenSeqs(t, st.KV(), keyID); !slices.Equal(got, windowSeen) {
				t.Errorf("recorded sequences %v, want %v (those at or below the floor pruned)", got, windowSeen)
			}
			if h, err := seqs.maxSeq(); err != nil || h != core.ReplayWindow+20 {
				t.Errorf("maxSeq = %d, %v: the seen records must not count", h, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			// Everything is on disk: after a reopen the window is the same.
			st = openKV(t, dir)
			defer st.Close()
			v.Seq = seqStore{st.KV()}
			for _, c := range []struct {
				seq  uint64
				want string
			}{{core.ReplayWindow + 19, replayedMsg}, {21, replayedMsg}, {20, tooOldMsg}, {22, ""}} {
				_, err := v.Check(windowOrder(t, key, "after-reopen", c.seq, self))
				if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, core.ErrReplay) || !strings.Contains(err.Error(), c.want)) {
					t.Errorf("after reopen, sequence %d: %v, want %q", c.seq, err, c.want)
				}
			}
		})
	}
}

// TestRecordSeqNeverLowers: recording an older sequence keeps the highest
// and marks the older one seen; a stale list naming records inside the
// window deletes nothing there.
func TestRecordSeqNeverLowers(t *testing.T) {
	t.Parallel()
	st := openKV(t, t.TempDir())
	defer st.Close()
	seqs := seqStore{st.KV()}
	for _, s := range []uint64{20, 10, 15, 3} {
		if err := seqs.RecordSeq("k", s); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := seqs.HighestSeq("k"); h != 20 {
		t.Fatalf("highest %d, want 20", h)
	}
	if got := seenSeqs(t, st.KV(), "k"); !slices.Equal(got, []uint64{3, 10, 15, 20}) {
		t.Errorf("seen %v", got)
	}
	err := st.KV().Update(func(tx cache.KVTx) error { return recordSeq(tx, "k", 2, []uint64{3, 10}) })
	if err != nil {
		t.Fatal(err)
	}
	if got := seenSeqs(t, st.KV(), "k"); !slices.Equal(got, []uint64{2, 3, 10, 15, 20}) {
		t.Errorf("a stale list inside the window deleted records: seen %v", got)
	}
	if h, _ := seqs.HighestSeq("k"); h != 20 {
		t.Fatalf("highest %d, want 20", h)
	}
	// The floor moves to 12: 2, 3 and 10 go; the other key is untouched.
	if err := seqs.RecordSeq("other", 1); err != nil {
		t.Fatal(err)
	}
	if err := seqs.RecordSeq("k", core.ReplayWindow+12); err != nil {
		t.Fatal(err)
	}
	if got := seenSeqs(t, st.KV(), "k"); !slices.Equal(got, []uint64{15, 20, core.ReplayWindow + 12}) {
		t.Errorf("after the floor moved to 12: seen %v", got)
	}
	if got := seenSeqs(t, st.KV(), "other"); !slices.Equal(got, []uint64{1}) {
		t.Errorf("other key: seen %v", got)
	}
}

// TestIntakeAcceptsOverlappedOrder: a node takes in an order that a later
// one overtook, runs it, keeps its highest sequence, and refuses another
// order with a sequence it already accepted.
func TestIntakeAcceptsOverlappedOrder(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	self := n.ID().String()
	pkgA, pkgB := f.addPackage("exit 0", 10), f.addPackage("exit 0", 11)
	keyID := core.KeyID(f.key.Public().(ed25519.PublicKey))
	seqIs := func(s uint64) func(o *core.Order) { return func(o *core.Order) { o.Seq = s } }

	if acc, err := f.push(testCtx(t), n, f.sign(f.order("late", self, pkgA, seqIs(20)))); err != nil || acc != 1 {
		t.Fatalf("push 20: accepted %d, %v", acc, err)
	}
	if acc, err := f.push(testCtx(t), n, f.sign(f.order("overtaken", self, pkgB, seqIs(10)))); err != nil || acc != 1 {
		t.Fatalf("push 10 after 20: accepted %d, %v", acc, err)
	}
	f.waitState(t, "late", core.StateSuccess)
	f.waitState(t, "overtaken", core.StateSuccess)
	if h, err := n.seqs.HighestSeq(keyID); err != nil || h != 20 {
		t.Errorf("highest after accepting 10 under 20: %d, %v; want 20", h, err)
	}
	if acc, err := f.push(testCtx(t), n, f.sign(f.order("reused-seq", self, pkgA, seqIs(10)))); err != nil || acc != 0 {
		t.Fatalf("push of another order with sequence 10: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "reused-seq", core.ErrReplaySt)
	if !strings.Contains(got.Detail, "sequence 10 "+replayedMsg) {
		t.Errorf("refusal detail %q", got.Detail)
	}
	for _, id := range []string{"late", "overtaken"} {
		if states := statesOf(f.statuses(id)); len(states) != 5 {
			t.Errorf("%s: reports %v, want one run", id, states)
		}
	}
}
