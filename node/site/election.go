package site

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
)

// Score weights. Everything is integer arithmetic so that every member, on
// any CPU, computes bit-identical scores from the same view.
const (
	cacheFullGiB  = 100          // this much free cache doubles the score
	uptimeFullSec = 24 * 60 * 60 // this much relative uptime gives ×1.5
	gib           = 1 << 30
	weightUnit    = 1000               // weights are in permille
	maxUptimeW    = 3 * weightUnit / 2 // weight at full uptime
)

// What a candidate says of its own links is a claim; the site weighs it
// against what the other members measured fetching from it
// (Meta.Measured).
const (
	// ClaimCapBps caps every claim (100 Mbit/s, the default declared
	// rate): claiming more wins nothing. Above it members rank by cache,
	// uptime and, on a tie, by claim.
	ClaimCapBps uint64 = 100e6 / 8
	// SlowBps: a member the site measured below this (a source members
	// had to cut at their throughput floor, see node/mesh Measured)
	// counts for what it was measured at, whatever it claims. Measurements
	// above it do not raise or lower a member: members measure a relay
	// while it pulls fragments through the site's WAN link and the other
	// members on the LAN, so comparing those numbers would move the role
	// to whoever is not relaying.
	SlowBps = 64 << 10
)

// Score is a member's relay fitness in the view members (the same slice
// Rank or Elect gets):
//
//	claim    = MeasuredBps if set (> 0), else min(UpBps, DownBps): what it says of itself
//	measured = the upper median of what the other members of the view measured
//	           fetching from it (Meta.Measured), if any did
//	bw       = measured if measured < SlowBps, else min(claim, ClaimCapBps)
//	cacheW   = 1000 + 1000 × min(FreeCacheBytes / 1 GiB, 100) / 100      ∈ [1000, 2000]
//	uptime   = (latest StartedAt among members) − StartedAt, in seconds, ≥ 0
//	uptimeW  = 1000 + 500 × min(uptime, 24 h) / 24 h                       ∈ [1000, 1500]
//	score    = bw × cacheW × uptimeW
//
// Equal scores are ranked by claim, then node ID. Uptime is measured
// against the youngest member of the view rather than the wall clock, so
// that members whose clocks or evaluation times differ still compute the
// same score.
func Score(m Meta, members []Meta) uint64 {
	return newScorer(members).score(m)
}

// scorer holds what scoring needs of the whole view.
type scorer struct {
	youngest int64
	reports  map[[MeasureTagSize]byte][]uint64
}

func newScorer(members []Meta) scorer {
	return scorer{youngest: youngest(members), reports: measuredBy(members)}
}

// claim is what m says its links carry.
func claim(m Meta) uint64 {
	if m.MeasuredBps > 0 {
		return m.MeasuredBps
	}
	return min(m.UpBps, m.DownBps)
}

// measuredBy collects, per measurement tag, what each member of the view
// measured of the others (its own entry about itself does not count; one
// entry per reporter and tag).
func measuredBy(members []Meta) map[[MeasureTagSize]byte][]uint64 {
	var out map[[MeasureTagSize]byte][]uint64
	for _, m := range members {
		self := MeasureTag(m.NodeID)
		var seen [MaxMeasured][MeasureTagSize]byte
		k := 0
	next:
		for _, e := range m.Measured {
			if e.Peer == self || e.Bps == 0 {
				continue
			}
			for _, p := range seen[:k] {
				if p == e.Peer {
					continue next
				}
			}
			if k < len(seen) {
				seen[k] = e.Peer
				k++
			}
			if out == nil {
				out = map[[MeasureTagSize]byte][]uint64{}
			}
			out[e.Peer] = append(out[e.Peer], e.Bps)
		}
	}
	return out
}

// measuredOf is the upper median of the reports about nodeID, 0 for none.
// The upper median: one member reporting a fast peer slow, or a slow one
// fast, does not move it in a site where two others measured.
func measuredOf(nodeID string, reports map[[MeasureTagSize]byte][]uint64) uint64 {
	r := reports[MeasureTag(nodeID)]
	if len(r) == 0 {
		return 0
	}
	r = slices.Clone(r)
	slices.Sort(r)
	return r[len(r)/2]
}

func youngest(members []Meta) int64 {
	var y int64
	for i, m := range members {
		if i == 0 || m.StartedAt > y {
			y = m.StartedAt
		}
	}
	return y
}

func (s scorer) score(m Meta) uint64 {
	bw := min(claim(m), ClaimCapBps)
	if got := measuredOf(m.NodeID, s.reports); got > 0 && got < SlowBps {
		bw = min(bw, got)
	}
	cacheW := uint64(weightUnit) + uint64(weightUnit)*min(m.FreeCacheBytes/gib, cacheFullGiB)/cacheFullGiB
	var up uint64
	if s.youngest > m.StartedAt {
		up = min(uint64(s.youngest-m.StartedAt), uptimeFullSec)
	}
	uptimeW := uint64(weightUnit) + (maxUptimeW-weightUnit)*up/uptimeFullSec
	return bw * cacheW * uptimeW
}

type scored struct {
	Meta
	score uint64
}

// rank sorts members best first and drops duplicate node IDs (the better
// ranked entry wins).
func rank(members []Meta) []scored {
	sc := newScorer(members)
	out := make([]scored, 0, len(members))
	for _, m := range members {
		out = append(out, scored{Meta: m, score: sc.score(m)})
	}
	slices.SortFunc(out, func(a, b scored) int {
		if a.RelayEligible != b.RelayEligible {
			if a.RelayEligible {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(claim(b.Meta), claim(a.Meta)); c != 0 {
			return c
		}
		return cmp.Compare(a.NodeID, b.NodeID)
	})
	seen := make(map[string]bool, len(out))
	return slices.DeleteFunc(out, func(s scored) bool {
		dup := seen[s.NodeID]
		seen[s.NodeID] = true
		return dup
	})
}

// Rank returns members in the order every member of the site computes the
// same: relay-eligible first, then by Score descending, then by claim
// descending, then by NodeID ascending. A node ID listed twice is kept once, at its better rank.
func Rank(members []Meta) []Meta {
	r := rank(members)
	out := make([]Meta, len(r))
	for i, s := range r {
		out[i] = s.Meta
	}
	return out
}

// Elect returns the node IDs of the n relays of a site, sorted ascending.
//
// Only relay-eligible members can be elected, and none that two members
// of the view distrust (Meta.Distrust: they caught it serving corrupt
// bytes; see distrustQuorum);
// if none is left the site has no relay (nil), and its nodes fetch from
// upstream themselves.
// Incumbents that are still members and eligible are kept (the best n of
// them) unless clearly beaten: the worst kept incumbent is replaced by the
// best challenger while the challenger scores strictly more and at least
// hysteresis × the incumbent's score. Free seats are filled from the
// ranking first, so an incumbent only competes with members that would not
// get a seat anyway.
// The result depends only on the sets members and incumbents, not on order.
func Elect(members []Meta, incumbents []string, n int, hysteresis float64) []string {
	if n <= 0 {
		return nil
	}
	ranked := rank(withoutDistrusted(members))
	isInc := make(map[string]bool, len(incumbents))
	for _, id := range incumbents {
		isInc[id] = true
	}
	// kept and challengers hold indexes into ranked, so ascending = best
	// first.
	var kept, challengers, claims []int
	for i, s := range ranked {
		if !s.RelayEligible {
			break // eligible ones come first
		}
		if isInc[s.NodeID] {
			claims = append(claims, i)
		} else {
			challengers = append(challengers, i)
		}
	}
	// More claimants than seats (two nodes took the role at once, or a
	// partition healed): keep those with the lowest node IDs. Scores may
	// differ a little between members' views (meta gossip lags), so a rank
	// order could leave two members each keeping itself; the ID order is
	// the same everywhere. The rest compete as challengers below.
	if len(claims) > n {
		slices.SortFunc(claims, func(a, b int) int { return strings.Compare(ranked[a].NodeID, ranked[b].NodeID) })
		challengers = append(challengers, claims[n:]...)
		slices.Sort(challengers)
		claims = claims[:n]
	}
	kept = append(kept, claims...)
	slices.Sort(kept)
	// Free seats go to the best challengers.
	free := min(n-len(kept), len(challengers))
	kept = append(kept, challengers[:free]...)
	challengers = challengers[free:]
	slices.Sort(kept)
	// Then the worst seated member is replaced while clearly beaten by the
	// best challenger left.
	for len(kept) > 0 && len(challengers) > 0 {
		w, c := ranked[kept[len(kept)-1]].score, ranked[challengers[0]].score
		if !(c > w && float64(c) >= hysteresis*float64(w)) {
			break
		}
		kept[len(kept)-1] = challengers[0]
		challengers = challengers[1:]
		slices.Sort(kept)
	}
	if len(kept) == 0 {
		return nil
	}
	ids := make([]string, len(kept))
	for i, k := range kept {
		ids[i] = ranked[k].NodeID
	}
	slices.Sort(ids)
	return ids
}

// distrustQuorum is how many distinct members must distrust a member
// before the election passes over it: two, or every other member in a
// site of two. One voice is not enough: any member (or anyone holding the
// gossip key) can gossip a distrust entry, and a single entry must not
// move the relay role.
func distrustQuorum(members int) int {
	return max(1, min(2, members-1))
}

// withoutDistrusted returns members with those at least distrustQuorum
// other members distrust made ineligible (a copy, when there are any).
func withoutDistrusted(members []Meta) []Meta {
	var voters map[string]map[string]bool // accused → who distrusts it
	for _, m := range members {
		for _, id := range m.Distrust {
			if id == m.NodeID {
				continue
			}
			if voters == nil {
				voters = map[string]map[string]bool{}
			}
			if voters[id] == nil {
				voters[id] = map[string]bool{}
			}
			voters[id][m.NodeID] = true
		}
	}
	if voters == nil {
		return members
	}
	q := distrustQuorum(len(members))
	out := slices.Clone(members)
	for i := range out {
		if len(voters[out[i].NodeID]) >= q {
			out[i].RelayEligible = false
		}
	}
	return out
}

// RelayCount is how many relays a site of liveMembers elects: one up to
// threshold members, ceil(liveMembers/threshold) above, at most maxRelays.
// No members, no relay. threshold or maxRelays below 1 count as 1.
func RelayCount(liveMembers, threshold, maxRelays int) int {
	if liveMembers <= 0 {
		return 0
	}
	threshold = max(threshold, 1)
	maxRelays = max(maxRelays, 1)
	return min((liveMembers+threshold-1)/threshold, maxRelays)
}

// Assign picks the relay responsible for fragmentKey by rendezvous (highest
// random weight) hashing: weight = first 8 bytes of sha256(key ‖ 0 ‖ relay),
// highest wins, ties to the smaller relay ID. Adding or removing a relay only
// moves the keys that relay wins or held. No relays, "".
func Assign(fragmentKey string, relays []string) string {
	best, bestW := -1, uint64(0)
	buf := make([]byte, 0, len(fragmentKey)+1+64)
	for i, r := range relays {
		buf = append(append(append(buf[:0], fragmentKey...), 0), r...)
		sum := sha256.Sum256(buf)
		w := binary.BigEndian.Uint64(sum[:8])
		if best < 0 || w > bestW || w == bestW && r < relays[best] {
			best, bestW = i, w
		}
	}
	if best < 0 {
		return ""
	}
	return relays[best]
}
