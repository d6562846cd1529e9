package site

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// node is a relay-eligible member with bandwidth bps and no cache or
// relative uptime bonus.
func node(id string, bps uint64) Meta {
	return Meta{NodeID: id, Site: "s", UpBps: bps, DownBps: bps, RelayEligible: true}
}

// claimer is a relay-eligible member claiming bps and a full cache and
// uptime, as the rogue of issue 13 did.
func claimer(id string, bps uint64) Meta {
	m := node(id, bps)
	m.FreeCacheBytes, m.StartedAt = 1<<50, -uptimeFullSec
	return m
}

// measuring is a member (of 1 B/s, not eligible) that measured peer at bps.
func measuring(id, peer string, bps uint64) Meta {
	m := ineligible(id, 1)
	m.Measured = []Measurement{{Peer: MeasureTag(peer), Bps: bps}}
	return m
}

func ineligible(id string, bps uint64) Meta {
	m := node(id, bps)
	m.RelayEligible = false
	return m
}

func TestScore(t *testing.T) {
	t.Parallel()
	const unit = weightUnit * weightUnit
	tests := []struct {
		name    string
		m       Meta
		members []Meta
		want    uint64
	}{
		{"min of declared", Meta{UpBps: 10, DownBps: 100}, nil, 10 * unit},
		{"own measurement is a claim", Meta{UpBps: 10, DownBps: 100, MeasuredBps: 50}, nil, 50 * unit},
		{"claim capped", Meta{UpBps: 1 << 40, DownBps: 1 << 40}, nil, ClaimCapBps * unit},
		{"measured slow", Meta{NodeID: "x", UpBps: 1 << 40, DownBps: 1 << 40},
			[]Meta{measuring("a", "x", 1000), measuring("b", "x", 2000)}, 2000 * unit},
		{"measured fast, claim counts", Meta{NodeID: "x", UpBps: 5 << 20, DownBps: 5 << 20},
			[]Meta{measuring("a", "x", 100<<20)}, 5 << 20 * unit},
		{"measured at SlowBps changes nothing", Meta{NodeID: "x", UpBps: 5 << 20, DownBps: 5 << 20},
			[]Meta{measuring("a", "x", SlowBps)}, 5 << 20 * unit},
		{"own report ignored", Meta{NodeID: "x", UpBps: 1 << 30, DownBps: 1 << 30, Measured: []Measurement{{Peer: MeasureTag("x"), Bps: 1}}},
			nil, ClaimCapBps * unit},
		{"full cache doubles", Meta{UpBps: 10, DownBps: 10, FreeCacheBytes: 500 << 30}, nil, 20 * unit},
		{"half cache", Meta{UpBps: 10, DownBps: 10, FreeCacheBytes: 50 << 30}, nil, 15 * unit},
		{"day of uptime", Meta{UpBps: 10, DownBps: 10, StartedAt: 0}, []Meta{{StartedAt: 2 * uptimeFullSec}}, 15 * unit},
		{"everything capped", Meta{NodeID: "x", UpBps: ^uint64(0), DownBps: ^uint64(0), FreeCacheBytes: ^uint64(0), StartedAt: -1 << 63},
			[]Meta{{StartedAt: 1<<63 - 1, Measured: []Measurement{{Peer: MeasureTag("x"), Bps: ^uint64(0)}}}}, ClaimCapBps * 2 * weightUnit * maxUptimeW},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			members := append([]Meta{tt.m}, tt.members...)
			if got := Score(tt.m, members); got != tt.want {
				t.Fatalf("Score = %d, want %d", got, tt.want)
			}
		})
	}
}

func ids(ms []Meta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.NodeID
	}
	return out
}

func TestRank(t *testing.T) {
	t.Parallel()
	members := []Meta{
		ineligible("fast-but-ineligible", 1000),
		node("b", 10),
		node("a", 10),
		node("c", 50),
		node("c", 1), // duplicate ID: the better entry stays
	}
	want := []string{"c", "a", "b", "fast-but-ineligible"}
	for i := range 20 {
		shuffled := slices.Clone(members)
		rand.New(rand.NewPCG(uint64(i), 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := Rank(shuffled)
		if !slices.Equal(ids(got), want) {
			t.Fatalf("Rank = %v, want %v", ids(got), want)
		}
		if got[0].UpBps != 50 {
			t.Fatalf("duplicate kept the worse entry: %+v", got[0])
		}
	}
}

// distrusting is node(id, bw) that caught the members bad serving corrupt
// bytes.
func distrusting(id string, bw uint64, bad ...string) Meta {
	m := node(id, bw)
	m.Distrust = bad
	return m
}

func TestElect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		members    []Meta
		incumbents []string
		n          int
		want       []string
	}{
		{"best elected", []Meta{node("a", 10), node("b", 30), node("c", 20)}, nil, 1, []string{"b"}},
		{"tie on NodeID", []Meta{node("b", 10), node("a", 10)}, nil, 1, []string{"a"}},
		{"incumbent kept under small difference", []Meta{node("a", 10), node("b", 14)}, []string{"a"}, 1, []string{"a"}},
		{"incumbent replaced at hysteresis", []Meta{node("a", 10), node("b", 15)}, []string{"a"}, 1, []string{"b"}},
		{"incumbent replaced when much worse", []Meta{node("a", 10), node("b", 100)}, []string{"a"}, 1, []string{"b"}},
		{"dead incumbent replaced", []Meta{node("a", 10), node("b", 12)}, []string{"gone"}, 1, []string{"b"}},
		{"ineligible incumbent replaced", []Meta{ineligible("a", 100), node("b", 1)}, []string{"a"}, 1, []string{"b"}},
		{"ineligible never chosen", []Meta{ineligible("a", 100), node("b", 1), ineligible("c", 100)}, nil, 2, []string{"b"}},
		{"none eligible, no relay", []Meta{ineligible("a", 100), ineligible("b", 100)}, nil, 1, nil},
		{"no members", nil, []string{"a"}, 1, nil},
		{"n zero", []Meta{node("a", 10)}, nil, 0, nil},
		{"equal zero scores do not flap", []Meta{node("a", 0), node("b", 0)}, []string{"b"}, 1, []string{"b"}},
		{"two claimants, one seat: lowest ID stays unless clearly beaten", []Meta{node("a", 10), node("b", 11), node("c", 12)}, []string{"a", "b"}, 1, []string{"a"}},
		{"two claimants, one seat: a clearly better one takes it", []Meta{node("a", 10), node("b", 20)}, []string{"a", "b"}, 1, []string{"b"}},
		{"fill free seats first", []Meta{node("a", 10), node("b", 14), node("c", 30), node("d", 40)}, []string{"a"}, 3, []string{"a", "c", "d"}},
		{"fill, then replace", []Meta{node("a", 10), node("b", 20), node("c", 30), node("d", 40)}, []string{"a"}, 3, []string{"b", "c", "d"}},
		{"worst incumbent replaced first", []Meta{node("a", 10), node("b", 20), node("c", 25)}, []string{"a", "b"}, 2, []string{"b", "c"}},
		{"n over eligible", []Meta{node("a", 10), ineligible("b", 20)}, nil, 3, []string{"a"}},
		{"distrusted incumbent replaced", []Meta{node("a", 100), distrusting("b", 10, "a"), distrusting("c", 20, "a")}, []string{"a"}, 1, []string{"c"}},
		{"distrusted never chosen", []Meta{node("a", 100), node("b", 10), distrusting("c", 20, "a", "b"), distrusting("d", 5, "a", "b")}, nil, 2, []string{"c", "d"}},
		{"one voice does not move the role", []Meta{node("a", 100), distrusting("b", 10, "a"), node("c", 20), node("d", 20)}, []string{"a"}, 1, []string{"a"}},
		{"one voice twice is one voice", []Meta{node("a", 100), distrusting("b", 10, "a", "a"), node("c", 20)}, nil, 1, []string{"a"}},
		{"distrusting oneself counts for nothing", []Meta{distrusting("a", 100, "a"), distrusting("b", 10, "a"), node("c", 20)}, nil, 1, []string{"a"}},
		{"site of two: the other member suffices", []Meta{node("a", 100), distrusting("b", 10, "a")}, []string{"a"}, 1, []string{"b"}},
		{"distrust of a non-member changes nothing", []Meta{node("a", 10), distrusting("b", 20, "gone")}, nil, 1, []string{"b"}},
		{"claiming 2^40 but measured slow does not win", []Meta{claimer("liar", 1<<40), node("h", 10<<20),
			measuring("m1", "liar", 20_000), measuring("m2", "liar", 30_000)}, nil, 1, []string{"h"}},
		{"claiming 2^40 but measured slow loses the role", []Meta{claimer("liar", 1<<40), node("h", 10<<20),
			measuring("m1", "liar", 20_000), measuring("m2", "liar", 30_000)}, []string{"liar"}, 1, []string{"h"}},
		{"a claim counts up to ClaimCapBps", []Meta{node("liar", 1<<40), node("h", ClaimCapBps*3/4)},
			[]string{"h"}, 1, []string{"h"}},
		{"the claim breaks a tie at the cap", []Meta{node("a", 1<<40), node("b", 2*ClaimCapBps)}, nil, 1, []string{"a"}},
		{"a relay behind a slow WAN, measured low but above SlowBps, keeps the role", []Meta{node("r", ClaimCapBps), node("c", 1<<40),
			measuring("m1", "r", 100<<10), measuring("m2", "r", 90<<10), measuring("m3", "c", 50<<20)}, []string{"r"}, 1, []string{"r"}},
		{"one member reporting the relay slow does not move it", []Meta{node("r", 8<<20), node("h", 10<<20),
			measuring("m1", "r", 5<<20), measuring("m2", "r", 6<<20), measuring("liar", "r", 1)}, []string{"r"}, 1, []string{"r"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for i := range 20 {
				r := rand.New(rand.NewPCG(uint64(i), 2))
				members := slices.Clone(tt.members)
				inc := slices.Clone(tt.incumbents)
				r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
				r.Shuffle(len(inc), func(i, j int) { inc[i], inc[j] = inc[j], inc[i] })
				got := Elect(members, inc, tt.n, DefaultHysteresis)
				if !slices.Equal(got, tt.want) {
					t.Fatalf("Elect(%v, %v) = %v, want %v", ids(members), inc, got, tt.want)
				}
			}
		})
	}
}

// TestElectStable: feeding the result back as incumbents gives the same
// result (no flapping), and the relay set changes only when a challenger is
// clearly better.
func TestElectStable(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		var members []Meta
		for i := range 1 + r.IntN(40) {
			m := node(fmt.Sprintf("n%02d", i), r.Uint64N(100))
			m.RelayEligible = r.IntN(4) != 0
			members = append(members, m)
		}
		n := 1 + r.IntN(4)
		first := Elect(members, nil, n, DefaultHysteresis)
		if again := Elect(members, first, n, DefaultHysteresis); !slices.Equal(again, first) {
			t.Fatalf("not a fixed point: %v then %v", first, again)
		}
		// Perturb scores by less than the hysteresis: incumbents stay.
		for i := range members {
			members[i].UpBps = members[i].UpBps * 12 / 10
			members[i].DownBps = members[i].UpBps
		}
		if again := Elect(members, first, n, DefaultHysteresis); !slices.Equal(again, first) {
			t.Fatalf("uniform change moved relays: %v then %v", first, again)
		}
	}
}

func TestRelayCount(t *testing.T) {
	t.Parallel()
	tests := []struct{ live, threshold, max, want int }{
		{0, 25, 4, 0},
		{1, 25, 4, 1},
		{25, 25, 4, 1},
		{26, 25, 4, 2},
		{50, 25, 4, 2},
		{51, 25, 4, 3},
		{1000, 25, 4, 4},
		{10, 0, 4, 4},
		{10, 3, 0, 1},
	}
	for _, tt := range tests {
		if got := RelayCount(tt.live, tt.threshold, tt.max); got != tt.want {
			t.Errorf("RelayCount(%d, %d, %d) = %d, want %d", tt.live, tt.threshold, tt.max, got, tt.want)
		}
	}
}

func TestAssign(t *testing.T) {
	t.Parallel()
	relays := []string{"r1", "r2", "r3", "r4"}
	const keys = 20000
	owner := make(map[string]string, keys)
	count := map[string]int{}
	for i := range keys {
		k := fmt.Sprintf("bafkrei%06d", i)
		o := Assign(k, relays)
		owner[k] = o
		count[o]++
		if rev := Assign(k, []string{"r4", "r3", "r2", "r1"}); rev != o {
			t.Fatalf("order dependent: %s vs %s", o, rev)
		}
	}
	for _, r := range relays {
		if c := count[r]; c < keys/4*85/100 || c > keys/4*115/100 {
			t.Errorf("relay %s got %d of %d keys, want about %d", r, c, keys, keys/4)
		}
	}
	// Remove r2: only r2's keys move.
	without := []string{"r1", "r3", "r4"}
	// Add r5: only keys r5 wins move, all to r5.
	with := append(slices.Clone(relays), "r5")
	moved := 0
	for k, o := range owner {
		if got := Assign(k, without); o != "r2" && got != o {
			t.Fatalf("key %s moved from %s to %s when r2 left", k, o, got)
		}
		if got := Assign(k, with); got != o {
			if got != "r5" {
				t.Fatalf("key %s moved from %s to %s when r5 joined", k, o, got)
			}
			moved++
		}
	}
	if moved < keys/5*85/100 || moved > keys/5*115/100 {
		t.Errorf("r5 took %d keys, want about %d", moved, keys/5)
	}
	if Assign("k", nil) != "" {
		t.Error("Assign with no relays should be empty")
	}
}
