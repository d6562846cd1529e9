package simulations

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// timedStore is a node's in-memory store that remembers when the node
// first pinned anything (its download began: it accepted the order and
// got a download slot) and when each fragment
// first arrived. The harness reads it for the --timeline file; the node
// sees an ordinary store.
type timedStore struct {
	*cache.Memory

	mu     sync.Mutex
	pinned time.Time
	puts   map[cid.Cid]time.Time
}

func newTimedStore() *timedStore {
	return &timedStore{Memory: cache.NewMemory(0), puts: map[cid.Cid]time.Time{}}
}

func (s *timedStore) Put(c cid.Cid, data []byte) error {
	if err := s.Memory.Put(c, data); err != nil {
		return err
	}
	s.arrived(c)
	return nil
}

// PutVerified is how the node stores what it fetched (cache.PutVerified);
// without it the embedded Memory's would skip the timing.
func (s *timedStore) PutVerified(v core.Verified) error {
	if err := s.Memory.PutVerified(v); err != nil {
		return err
	}
	s.arrived(v.CID())
	return nil
}

func (s *timedStore) arrived(c cid.Cid) {
	s.mu.Lock()
	if _, ok := s.puts[c]; !ok {
		s.puts[c] = time.Now()
	}
	s.mu.Unlock()
}

func (s *timedStore) Pin(owner string, cids ...cid.Cid) error {
	if err := s.Memory.Pin(owner, cids...); err != nil {
		return err
	}
	s.mu.Lock()
	if s.pinned.IsZero() {
		s.pinned = time.Now()
	}
	s.mu.Unlock()
	return nil
}

// times returns when the node pinned (zero if never), when it stored the
// manifest pkg and, per fragment of m in order, when it arrived (zero if
// it did not).
func (s *timedStore) times(pkg cid.Cid, m *core.Manifest) (pinned, manifest time.Time, frags []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, c := range m.FragmentCIDs() {
		out = append(out, s.puts[c])
	}
	return s.pinned, s.puts[pkg], out
}

// TimelineHeader is the first row of a timeline file.
var TimelineHeader = []string{"strategy", "node", "site", "relay", "event", "fragment", "t_s"}

// writeTimeline writes one strategy's rows: per node a "start" row (its
// download began), a "manifest" row (it had package pkg's
// manifest), a "fragment" row per fragment it stored
// (index in the manifest), and a "done" row when it held the whole
// package. Times are seconds from the deployment; rows are sorted by
// time. relay is whether the node was a relay when the run ended.
func (f *fleet) writeTimeline(w *csv.Writer, pkg cid.Cid, m *core.Manifest, t0 time.Time) error {
	type row struct {
		t   float64
		rec []string
	}
	var rows []row
	sec := func(t time.Time) float64 { return t.Sub(t0).Seconds() }
	add := func(n *simNode, relay, event string, frag int, t time.Time) {
		fr := ""
		if frag >= 0 {
			fr = strconv.Itoa(frag)
		}
		rows = append(rows, row{sec(t), []string{f.strategy, n.name, n.site, relay, event, fr,
			strconv.FormatFloat(sec(t), 'f', 3, 64)}})
	}
	for _, n := range f.nodes {
		relay := "false"
		if nd := n.running(); nd != nil && nd.IsRelay() {
			relay = "true"
		}
		pinned, manifest, frags := n.store.times(pkg, m)
		if !pinned.IsZero() {
			add(n, relay, "start", -1, pinned)
		}
		if !manifest.IsZero() {
			add(n, relay, "manifest", -1, manifest)
		}
		for i, t := range frags {
			if !t.IsZero() {
				add(n, relay, "fragment", i, t)
			}
		}
		if at, _ := n.inst.result(); !at.IsZero() {
			add(n, relay, "done", -1, at)
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		switch {
		case a.t < b.t:
			return -1
		case a.t > b.t:
			return 1
		}
		return 0
	})
	for _, r := range rows {
		if err := w.Write(r.rec); err != nil {
			return fmt.Errorf("simulations: timeline: %w", err)
		}
	}
	w.Flush()
	return w.Error()
}

// NewTimelineWriter starts a timeline file on w with its header row.
func NewTimelineWriter(w io.Writer) (*csv.Writer, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(TimelineHeader); err != nil {
		return nil, fmt.Errorf("simulations: timeline: %w", err)
	}
	return cw, nil
}
