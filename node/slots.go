package node

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// slots is a counting semaphore whose waiters are served by job rank
// (priority 0 first, then order sequence), not by arrival.
type slots struct {
	mu      sync.Mutex
	free    int
	waiters []*slotWaiter
}

type slotWaiter struct {
	rank    rank
	ready   chan struct{}
	granted bool
}

// rank orders jobs: lower priority value first, then lower sequence.
type rank struct {
	prio int
	seq  uint64
}

func (a rank) compare(b rank) int {
	if c := cmp.Compare(a.prio, b.prio); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire waits for a slot; the returned func gives it back.
func (s *slots) acquire(ctx context.Context, r rank) (release func(), err error) {
	s.mu.Lock()
	if s.free > 0 && len(s.waiters) == 0 {
		s.free--
		s.mu.Unlock()
		return sync.OnceFunc(s.release), nil
	}
	w := &slotWaiter{rank: r, ready: make(chan struct{})}
	i, _ := slices.BinarySearchFunc(s.waiters, r, func(x *slotWaiter, r rank) int {
		if x.rank.compare(r) <= 0 {
			return -1 // equal ranks keep arrival order
		}
		return 1
	})
	s.waiters = slices.Insert(s.waiters, i, w)
	s.mu.Unlock()

	select {
	case <-w.ready:
		return sync.OnceFunc(s.release), nil
	case <-ctx.Done():
		s.mu.Lock()
		defer s.mu.Unlock()
		if w.granted {
			s.releaseLocked()
		} else {
			s.waiters = slices.DeleteFunc(s.waiters, func(x *slotWaiter) bool { return x == w })
		}
		return nil, ctx.Err()
	}
}

func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *slots) releaseLocked() {
	if len(s.waiters) == 0 {
		s.free++
		return
	}
	w := s.waiters[0]
	s.waiters = s.waiters[1:]
	w.granted = true
	close(w.ready)
}
