package node

import (
	"context"
	"errors"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// TestHedgedFirstAnswerWins drives hedged with fetchers that block on
// channels: whichever answers first with verified bytes wins, the other is
// cancelled, a hedge starts only when due and never after the fetch it
// hedges ended, and hedged returns only when both have ended.
func TestHedgedFirstAnswerWins(t *testing.T) {
	t.Parallel()
	data := []byte("fragment")
	good, err := core.Verify(core.FragmentCID(data), data)
	if err != nil {
		t.Fatal(err)
	}
	errPrimary, errHedge := errors.New("primary failed"), errors.New("hedge failed")
	type step struct {
		hedgeStarted chan struct{}
	}
	tests := []struct {
		name     string
		due      bool // the hedge is due at once
		primary  func(ctx context.Context, s step) (core.Verified, error)
		hedge    func(ctx context.Context, s step) (core.Verified, error)
		wantHedg bool // the hedge's bytes win
		wantErr  error
		noHedge  bool // the hedge must not run
	}{
		{"a stalled fetch loses to its hedge and is cancelled", true,
			func(ctx context.Context, _ step) (core.Verified, error) {
				<-ctx.Done()
				return core.Verified{}, ctx.Err()
			},
			func(context.Context, step) (core.Verified, error) { return good, nil },
			true, nil, false},
		{"the fetch wins and its hedge is cancelled", true,
			func(_ context.Context, s step) (core.Verified, error) { <-s.hedgeStarted; return good, nil },
			func(ctx context.Context, s step) (core.Verified, error) {
				close(s.hedgeStarted)
				<-ctx.Done()
				return core.Verified{}, ctx.Err()
			},
			false, nil, false},
		{"the hedge answers after the fetch failed", true,
			func(_ context.Context, s step) (core.Verified, error) {
				<-s.hedgeStarted
				return core.Verified{}, errPrimary
			},
			func(_ context.Context, s step) (core.Verified, error) { close(s.hedgeStarted); return good, nil },
			true, nil, false},
		{"both fail: the fetch's error", true,
			func(_ context.Context, s step) (core.Verified, error) {
				<-s.hedgeStarted
				return core.Verified{}, errPrimary
			},
			func(_ context.Context, s step) (core.Verified, error) {
				close(s.hedgeStarted)
				return core.Verified{}, errHedge
			},
			false, errPrimary, false},
		{"no hedge before it is due", false,
			func(context.Context, step) (core.Verified, error) { return good, nil },
			nil, false, nil, true},
		{"no hedge once the fetch failed", false,
			func(context.Context, step) (core.Verified, error) { return core.Verified{}, errPrimary },
			nil, false, errPrimary, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := step{hedgeStarted: make(chan struct{})}
			due := make(chan struct{})
			if tt.due {
				close(due)
			}
			hedgeRan := false
			hedge := func(ctx context.Context) (core.Verified, error) {
				hedgeRan = true
				if tt.hedge == nil {
					return core.Verified{}, errHedge
				}
				return tt.hedge(ctx, s)
			}
			v, won, err := hedged(context.Background(), func(ctx context.Context) (core.Verified, error) { return tt.primary(ctx, s) }, hedge, due)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && v.CID() != good.CID()) {
				t.Fatalf("hedged = %v, %v; want %v", v.CID(), err, tt.wantErr)
			}
			if won != tt.wantHedg {
				t.Fatalf("hedge won = %v, want %v", won, tt.wantHedg)
			}
			if tt.noHedge && hedgeRan {
				t.Fatal("the hedge ran")
			}
		})
	}
}

// The endgame starts when every fragment is handed out and few are left in
// flight.
func TestPickerEndgame(t *testing.T) {
	t.Parallel()
	var left []want
	for i := range endgameFragments + 2 {
		left = append(left, want{c: core.FragmentCID([]byte{byte(i)}), size: 1})
	}
	p := &picker{left: left, maxPulls: len(left), avail: func() func(cid.Cid) bool { return func(cid.Cid) bool { return true } },
		freed: make(chan struct{}, 1)}
	for range len(left) {
		if p.endgame() {
			t.Fatalf("endgame with %d fragments still to hand out", len(p.left))
		}
		if _, _, ok, _ := p.next(); !ok {
			t.Fatal("next handed out nothing")
		}
	}
	if p.endgame() {
		t.Fatalf("endgame with %d fragments in flight, want at most %d", p.inflight, endgameFragments)
	}
	p.finish(false)
	p.finish(false)
	if !p.endgame() {
		t.Fatalf("no endgame with nothing left and %d in flight", p.inflight)
	}
}
