package core

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"
)

// ReplayWindow is how many sequences at and below the highest accepted
// one a node still accepts, as IPsec and DTLS do: orders pushed at once
// arrive in any order, and a legitimate order must not be refused because
// a later one overtook it. An order inside the window runs only if its
// sequence was not accepted before (SeqStore.Seen); one at or below
// highest-ReplayWindow is refused unseen. The coordinator numbers all its
// orders from one counter, so the window is 65,536 orders issued by it,
// of which a node records only those addressed to it.
const ReplayWindow uint64 = 1 << 16

// MaxSeqJump bounds how far above the highest accepted sequence one order
// may lie. A node's highest only moves up, and everything at or below
// highest-ReplayWindow is refused, so a single order signed with sequence
// 2^64-1 (a bug, a bad restore of the coordinator's counter) would make a
// node refuse every later real order for good. An order more than
// MaxSeqJump above the highest is refused and moves nothing. 1<<20 is 16
// replay windows: the coordinator numbers all its orders from one counter,
// and a node offline while a million orders (to any nodes) were issued
// does not happen in a fleet that deploys a few hundred times a day; such
// a node is re-enrolled. A node that accepted nothing yet (highest 0) has
// no reference and takes its first order at any sequence.
const MaxSeqJump uint64 = 1 << 20

// SeqStore keeps, durably and per signing key, the highest order sequence
// accepted and which sequences inside the replay window were accepted.
// RecordSeq returns only once the record is on stable storage.
type SeqStore interface {
	// HighestSeq is the highest sequence accepted from keyID, 0 if none.
	HighestSeq(keyID string) (uint64, error)
	// Seen reports whether seq from keyID was recorded as accepted. Only
	// sequences inside the window are asked about; records at or below
	// highest-ReplayWindow may be pruned.
	Seen(keyID string, seq uint64) (bool, error)
	// RecordSeq records seq from keyID as accepted: the highest becomes
	// max(highest, seq), never lower, seq is marked seen, and records
	// that fell out of the window may be pruned.
	RecordSeq(keyID string, seq uint64) error
}

// WindowFloor is the highest sequence the replay window no longer holds
// when high is the highest accepted: a sequence s is in the window iff
// WindowFloor(high) < s <= high.
func WindowFloor(high uint64) uint64 {
	if high < ReplayWindow {
		return 0
	}
	return high - ReplayWindow
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
	// MaxLifetime, when positive, is the longest a deploy order may be
	// valid (expires minus not-before): the coordinator's maximum, pinned
	// at enrollment. A longer one is refused (ErrBadOrder). Cancel orders
	// are not bounded: they outlive the order they cancel by design.
	MaxLifetime time.Duration

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
// pinned key, signature, encoding, issued-at, expiry, addressing and the
// replay window (see ReplayWindow). The sequence is not stored.
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
	if life := o.Expires.Sub(o.NotBefore); v.MaxLifetime > 0 && o.Kind == KindDeploy && life > v.MaxLifetime {
		return o, fmt.Errorf("%w: order %s is valid for %s, above the maximum of %s pinned at enrollment", ErrBadOrder, o.ID, life, v.MaxLifetime)
	}
	if !o.Addressed(v.Self) {
		return o, fmt.Errorf("%w: order %s does not name node %s", ErrNotAddressed, o.ID, v.Self)
	}
	if err := v.checkSeq(e.KeyID, o); err != nil {
		return o, err
	}
	return o, nil
}

// checkSeq applies the replay window: a sequence above the highest
// accepted passes; one inside the window passes unless it was accepted
// before; one at or below the window's floor is refused.
func (v *Verifier) checkSeq(keyID string, o *Order) error {
	high, err := v.Seq.HighestSeq(keyID)
	if err != nil {
		return fmt.Errorf("core: read highest sequence: %w", err)
	}
	if high > 0 && o.Seq > high && o.Seq-high > MaxSeqJump {
		return fmt.Errorf("%w: order %s: sequence %d is more than %d above the highest accepted (%d): refused so that one order cannot move this node's replay window past every real order",
			ErrReplay, o.ID, o.Seq, MaxSeqJump, high)
	}
	if o.Seq > high {
		return nil
	}
	if o.Seq <= WindowFloor(high) {
		return fmt.Errorf("%w: order %s: sequence %d is older than the replay window (highest %d, window %d)",
			ErrReplay, o.ID, o.Seq, high, ReplayWindow)
	}
	seen, err := v.Seq.Seen(keyID, o.Seq)
	if err != nil {
		return fmt.Errorf("core: read accepted sequences: %w", err)
	}
	if seen {
		return fmt.Errorf("%w: order %s: sequence %d was already accepted (highest %d)", ErrReplay, o.ID, o.Seq, high)
	}
	return nil
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
	if err := v.Seq.RecordSeq(e.KeyID, o.Seq); err != nil {
		return nil, fmt.Errorf("core: store accepted sequence: %w", err)
	}
	return o, nil
}

// MaxSkewOrDefault is the allowed clock skew in force: MaxSkew, or
// DefaultMaxSkew when unset.
func (v *Verifier) MaxSkewOrDefault() time.Duration {
	if v.MaxSkew == 0 {
		return DefaultMaxSkew
	}
	return v.MaxSkew
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// MemSeqStore is a SeqStore in memory, for tests and the simulator.
type MemSeqStore struct {
	mu   sync.Mutex
	high map[string]uint64
	seen map[string]map[uint64]bool // per key, accepted sequences in the window
}

// HighestSeq implements SeqStore.
func (s *MemSeqStore) HighestSeq(k string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.high[k], nil
}

// Seen implements SeqStore.
func (s *MemSeqStore) Seen(k string, seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[k][seq], nil
}

// RecordSeq implements SeqStore; it prunes the records that fall out of
// the window when the highest advances.
func (s *MemSeqStore) RecordSeq(k string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.high == nil {
		s.high, s.seen = map[string]uint64{}, map[string]map[uint64]bool{}
	}
	if s.seen[k] == nil {
		s.seen[k] = map[uint64]bool{}
	}
	high := max(s.high[k], seq)
	floor := WindowFloor(high)
	if seq > floor {
		s.seen[k][seq] = true
	}
	if high > s.high[k] {
		s.high[k] = high
		for old := range s.seen[k] {
			if old <= floor {
				delete(s.seen[k], old)
			}
		}
	}
	return nil
}
