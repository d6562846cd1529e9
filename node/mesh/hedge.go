package mesh

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
)

// Endgame hedging (BitTorrent's endgame, Kraken's): when only the last
// fragments of a download are outstanding, one that has been in flight
// much longer than the site's measured rate says it should is asked of a
// second source too, and the first verified answer wins. The node decides
// when (it knows what is outstanding); the mesh says how long is too long
// (HedgeAfter) and picks the second source (Hedge).

// hedgeMeasureMin: fetches smaller than this (manifests) measure latency,
// not rate, and do not feed the site rate.
const hedgeMeasureMin = 64 << 10

// hedgeSources bounds the holders one Hedge asks, one after the other.
const hedgeSources = 2

// HedgeAfter returns how long a fetch of a fragment of size bytes may be
// in flight before a hedge is worth sending: three times what the rate
// measured from site members says, and at least Config.HedgeMin. ok is
// false while this node has measured no site member yet (there is then
// nothing to call late), and while its own link seems the slow one.
func (m *Mesh) HedgeAfter(size int64) (d time.Duration, ok bool) {
	m.mu.Lock()
	rate := m.siteRate
	m.mu.Unlock()
	if rate <= 0 || m.cfg.Strategy != StrategyMesh || m.localSlow() {
		// A node behind a slow link would only split it further.
		return 0, false
	}
	expect := time.Duration(float64(size) / rate * float64(time.Second))
	return max(m.cfg.HedgeMin, 3*expect), true
}

// Hedge fetches c (size bytes) as a second request beside a fetch of c
// under way, from site members that announced c and that this node is not
// fetching c from already, best first (at most hedgeSources of them). It
// never asks the coordinator, nor a relay that does not hold c: a hedge
// must not send the fragment over the WAN a second time. With no such
// holder it returns ErrNoSource at once.
func (m *Mesh) Hedge(ctx context.Context, c cid.Cid, size int64) (core.Verified, error) {
	m.mu.Lock()
	busy := map[peer.ID]bool{}
	for p := range m.active[c] {
		busy[p] = true
	}
	m.mu.Unlock()
	holders := m.peersWith(c, busy)
	if len(holders) == 0 {
		return core.Verified{}, fmt.Errorf("%w: %s: no other site member holds it to hedge with", ErrNoSource, c)
	}
	m.mu.Lock()
	m.stats.Hedges++
	m.mu.Unlock()
	var err error
	for _, p := range holders[:min(len(holders), hedgeSources)] {
		var v core.Verified
		if v, err = m.fetchFrom(ctx, p, c, size, nil); err == nil {
			m.count(kindPeer)
			return v, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return core.Verified{}, fmt.Errorf("%w: %s: hedge: %w", ErrNoSource, c, err)
}

// HedgeWon records that a hedge answered before the fetch it hedged.
func (m *Mesh) HedgeWon() {
	m.mu.Lock()
	m.stats.HedgeWins++
	m.mu.Unlock()
}
