package core

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"
)

// SeqStore keeps the highest order sequence seen per signing key, durably:
// SetHighestSeq returns only once the value is on stable storage.
type SeqStore interface {
	HighestSeq(keyID string) (uint64, error)
	SetHighestSeq(keyID string, seq uint64) error
}

// DefaultMaxSkew is how far in the future an order's issued-at may lie.
const DefaultMaxSkew = 5 * time.Minute

// Verifier applies DESIGN.md's Trust rules to orders arriving at a node.
type Verifier struct {
	Keys    map[string]ed25519.PublicKey // pinned order keys by KeyID
	Self    string                       // this node's ID
	Seq     SeqStore
	Now     func() time.Time
	MaxSkew time.Duration

	mu sync.Mutex // serialises the replay check and its durable update
}

// PinnedKeys builds the Keys map of a Verifier.
func PinnedKeys(pubs ...ed25519.PublicKey) map[string]ed25519.PublicKey {
	m := make(map[string]ed25519.PublicKey, len(pubs))
	for _, p := range pubs {
		m[KeyID(p)] = p
	}
	return m
}

// Check verifies an order envelope without recording its sequence: type,
// pinned key, signature, encoding, issued-at, expiry and addressing. The
// sequence is compared with the highest seen but not stored.
func (v *Verifier) Check(e *Envelope) (*Order, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no envelope", ErrBadEnvelope)
	}
	pub, ok := v.Keys[e.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: %s is not pinned on this node", ErrUnknownKey, short(e.KeyID))
	}
	o, err := OpenOrder(e, pub)
	if err != nil {
		return nil, err
	}
	now := v.now()
	skew := v.MaxSkew
	if skew == 0 {
		skew = DefaultMaxSkew
	}
	if o.IssuedAt.After(now.Add(skew)) {
		return o, fmt.Errorf("%w: order %s issued at %s, now is %s", ErrNotYetValid, o.ID, o.IssuedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !now.Before(o.Expires) {
		return o, fmt.Errorf("%w: order %s expired at %s", ErrExpired, o.ID, o.Expires.Format(time.RFC3339))
	}
	if !o.Addressed(v.Self) {
		return o, fmt.Errorf("%w: order %s does not name node %s", ErrNotAddressed, o.ID, v.Self)
	}
	high, err := v.Seq.HighestSeq(e.KeyID)
	if err != nil {
		return o, fmt.Errorf("core: read highest sequence: %w", err)
	}
	if o.Seq <= high {
		return o, fmt.Errorf("%w: order %s has sequence %d, highest seen %d", ErrReplay, o.ID, o.Seq, high)
	}
	return o, nil
}

// Accept verifies an order like Check and, when it passes, durably records
// its sequence before returning, so nothing acts on an order whose sequence
// a crash could forget. On error the returned order, when not nil, is the
// decoded (authentic) order that was refused, for the refusal's report.
func (v *Verifier) Accept(e *Envelope) (*Order, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	o, err := v.Check(e)
	if err != nil {
		return o, err
	}
	if err := v.Seq.SetHighestSeq(e.KeyID, o.Seq); err != nil {
		return nil, fmt.Errorf("core: store highest sequence: %w", err)
	}
	return o, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// MemSeqStore is a SeqStore in memory, for tests and the simulator.
type MemSeqStore struct {
	mu sync.Mutex
	m  map[string]uint64
}

// HighestSeq implements SeqStore.
func (s *MemSeqStore) HighestSeq(k string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}

// SetHighestSeq implements SeqStore.
func (s *MemSeqStore) SetHighestSeq(k string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]uint64{}
	}
	if seq > s.m[k] {
		s.m[k] = seq
	}
	return nil
}
