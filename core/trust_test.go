package core

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

const verifierSelf = "node-b"

// newTestVerifier returns a verifier for node-b that pins coordKey, sees the
// time now and has already accepted sequence high from coordKey.
func newTestVerifier(now time.Time, high uint64) *Verifier {
	seq := &MemSeqStore{}
	if high > 0 {
		_ = seq.RecordSeq(KeyID(pubOf(coordKey)), high)
	}
	return &Verifier{
		Keys: PinnedKeys(pubOf(coordKey)),
		Self: verifierSelf,
		Seq:  seq,
		Now:  func() time.Time { return now },
	}
}

func highest(t testing.TB, v *Verifier) uint64 {
	t.Helper()
	h, err := v.Seq.HighestSeq(KeyID(pubOf(coordKey)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func signed(t testing.TB, key ed25519.PrivateKey, mutate func(o *Order)) *Envelope {
	t.Helper()
	o := deployOrder()
	if mutate != nil {
		mutate(o)
	}
	e, err := SignOrder(o, key)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestVerifierAccept(t *testing.T) {
	t.Parallel()
	// The highest sequence already accepted, above the replay window so
	// that some sequences are older than it.
	const high = ReplayWindow + 10
	now := t0.Add(time.Hour)
	withSeq := func(seq uint64) func(o *Order) { return func(o *Order) { o.Seq = seq } }
	tests := []struct {
		name       string
		env        func(t *testing.T) *Envelope
		now        time.Time
		want       error
		wantRefOrd bool // a refused order still comes back, for the report
	}{
		{"next sequence", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+1)) }, now, nil, true},
		{"sequence jump up to MaxSeqJump", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+MaxSeqJump)) }, now, nil, true},
		{"sequence jump beyond MaxSeqJump", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(1<<40)) }, now, ErrReplay, true},
		{"cancel order", func(t *testing.T) *Envelope {
			o := cancelOrder()
			o.Targets, o.Seq = []string{verifierSelf}, high+1
			e, err := SignOrder(o, coordKey)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}, t0.Add(30 * time.Minute), nil, true},
		{"issued within the allowed skew", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+1)) }, t0.Add(-DefaultMaxSkew), nil, true},
		{"another key", func(t *testing.T) *Envelope { return signed(t, otherKey, withSeq(high+1)) }, now, ErrUnknownKey, false},
		{"another key claiming the pinned one", func(t *testing.T) *Envelope {
			e := signed(t, otherKey, withSeq(high+1))
			e.KeyID = KeyID(pubOf(coordKey))
			return e
		}, now, ErrBadSignature, false},
		{"tampered payload", func(t *testing.T) *Envelope {
			e := signed(t, coordKey, withSeq(high+1))
			e.Payload = bytes.Replace(e.Payload, []byte(`"node-c"`), []byte(`"node-d"`), 1)
			return e
		}, now, ErrBadSignature, false},
		{"tampered signature", func(t *testing.T) *Envelope {
			e := signed(t, coordKey, withSeq(high+1))
			e.Sig[10] ^= 4
			return e
		}, now, ErrBadSignature, false},
		{"status envelope", func(t *testing.T) *Envelope {
			e, err := SignStatus(nodeStatus(), coordKey)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}, now, ErrWrongType, false},
		{"inside the window, not accepted before", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high-1)) }, now, nil, true},
		{"oldest in the window", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high-ReplayWindow+1)) }, now, nil, true},
		{"replayed: same sequence", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high)) }, now, ErrReplay, true},
		{"replayed: at the window's floor", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high-ReplayWindow)) }, now, ErrReplay, true},
		{"replayed: lower sequence", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(3)) }, now, ErrReplay, true},
		{"expired", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+1)) }, t0.Add(25 * time.Hour), ErrExpired, true},
		{"expires this second", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+1)) }, t0.Add(24 * time.Hour), ErrExpired, true},
		{"issued far in the future", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+1)) }, t0.Add(-DefaultMaxSkew - time.Second), ErrNotYetValid, true},
		{"issued a day ahead", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(high+1)) }, t0.Add(-24 * time.Hour), ErrNotYetValid, true},
		{"for other nodes", func(t *testing.T) *Envelope {
			return signed(t, coordKey, func(o *Order) { o.Seq = high + 1; o.Targets = []string{"node-a", "node-c"} })
		}, now, ErrNotAddressed, true},
		{"expired and replayed: expiry first", func(t *testing.T) *Envelope { return signed(t, coordKey, withSeq(1)) }, t0.Add(48 * time.Hour), ErrExpired, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newTestVerifier(tt.now, high)
			env := tt.env(t)

			// Check never stores anything.
			o, err := v.Check(env)
			if (err == nil) != (tt.want == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if got := highest(t, v); got != high {
				t.Fatalf("Check moved the highest sequence to %d", got)
			}
			if o != nil && o.Seq != high {
				if seen, _ := v.Seq.Seen(KeyID(pubOf(coordKey)), o.Seq); seen {
					t.Fatalf("Check recorded sequence %d as accepted", o.Seq)
				}
			}

			o, err = v.Accept(env)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				if got := highest(t, v); got != max(high, o.Seq) {
					t.Fatalf("accepted sequence %d over %d, highest stored %d", o.Seq, high, got)
				}
				// The same envelope a second time is a replay.
				_, err = v.Accept(env)
				checkErr(t, err, ErrReplay)
				return
			}
			checkErr(t, err, tt.want)
			if got := highest(t, v); got != high {
				t.Errorf("refused order moved the highest sequence from %d to %d", high, got)
			}
			if (o != nil) != tt.wantRefOrd {
				t.Errorf("refused order returned: %v, want returned %v", o, tt.wantRefOrd)
			}
		})
	}
}

// TestVerifierRefusalKeepsSequence replays the attack of a refused order
// with a huge sequence number: it must not lock out later genuine orders.
func TestVerifierRefusalKeepsSequence(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	v := newTestVerifier(now, 10)
	seq := func(n uint64, mutate func(o *Order)) *Envelope {
		return signed(t, coordKey, func(o *Order) {
			o.Seq = n
			if mutate != nil {
				mutate(o)
			}
		})
	}
	refused := []struct {
		env  *Envelope
		want error
	}{
		{seq(1000, func(o *Order) { o.Expires = now }), ErrExpired},
		{seq(1001, func(o *Order) { o.IssuedAt = now.Add(time.Hour) }), ErrNotYetValid},
		{seq(1002, func(o *Order) { o.Targets = []string{"node-x"} }), ErrNotAddressed},
		{signed(t, otherKey, func(o *Order) { o.Seq = 1003 }), ErrUnknownKey},
	}
	for _, r := range refused {
		_, err := v.Accept(r.env)
		checkErr(t, err, r.want)
		if got := highest(t, v); got != 10 {
			t.Fatalf("after a refusal (%v) the highest sequence is %d", err, got)
		}
	}
	for _, n := range []uint64{11, 12, 20} {
		if _, err := v.Accept(seq(n, nil)); err != nil {
			t.Fatalf("sequence %d: %v", n, err)
		}
		if got := highest(t, v); got != n {
			t.Fatalf("after accepting %d the highest sequence is %d", n, got)
		}
	}
	// Below the highest but inside the window: accepted once.
	if _, err := v.Accept(seq(15, nil)); err != nil {
		t.Fatalf("sequence 15 after 20: %v", err)
	}
	if got := highest(t, v); got != 20 {
		t.Fatalf("accepting 15 after 20 moved the highest sequence to %d", got)
	}
	for _, n := range []uint64{12, 15} {
		_, err := v.Accept(seq(n, nil))
		checkErr(t, err, ErrReplay, fmt.Sprintf("sequence %d was already accepted", n), "highest 20")
	}
}

func TestVerifierMaxSkew(t *testing.T) {
	t.Parallel()
	env := signed(t, coordKey, nil)
	v := newTestVerifier(t0.Add(-time.Minute), 0)
	v.MaxSkew = 30 * time.Second
	_, err := v.Accept(env)
	checkErr(t, err, ErrNotYetValid)
	v.MaxSkew = 2 * time.Minute
	if _, err := v.Accept(env); err != nil {
		t.Fatal(err)
	}
}

// TestVerifierConcurrentAccept races many copies of one order: exactly one
// is accepted, the rest are replays.
func TestVerifierConcurrentAccept(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t0, 0)
	env := signed(t, coordKey, nil)
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = v.Accept(env) })
	}
	wg.Wait()
	accepted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			accepted++
		case !errors.Is(err, ErrReplay):
			t.Errorf("unexpected refusal: %v", err)
		}
	}
	if accepted != 1 {
		t.Errorf("%d of %d copies accepted, want 1", accepted, n)
	}
}

type failingSeqStore struct {
	high              uint64
	read, seen, write error
}

func (f failingSeqStore) HighestSeq(string) (uint64, error) { return f.high, f.read }
func (f failingSeqStore) Seen(string, uint64) (bool, error) { return false, f.seen }
func (f failingSeqStore) RecordSeq(string, uint64) error    { return f.write }

func TestVerifierStoreErrors(t *testing.T) {
	t.Parallel()
	env := signed(t, coordKey, nil)
	for name, store := range map[string]failingSeqStore{
		"read":  {read: errDisk},
		"seen":  {high: 20, seen: errDisk}, // the order's 11 is inside the window
		"write": {write: errDisk},
	} {
		v := newTestVerifier(t0, 0)
		v.Seq = store
		o, err := v.Accept(env)
		if !errors.Is(err, errDisk) {
			t.Errorf("%s error: Accept = %v", name, err)
		}
		if name == "write" && o != nil {
			t.Errorf("order returned although its sequence was not stored")
		}
	}
}

func TestMemSeqStoreNeverLowers(t *testing.T) {
	t.Parallel()
	var s MemSeqStore
	for _, n := range []uint64{5, 3, 9, 1} {
		if err := s.RecordSeq("k", n); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.HighestSeq("k"); got != 9 {
		t.Errorf("highest = %d, want 9", got)
	}
	if got, _ := s.HighestSeq("other"); got != 0 {
		t.Errorf("unknown key: highest = %d", got)
	}
}
