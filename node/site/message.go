package site

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/hashicorp/memberlist"
)

// A message frame: kind byte, 8-byte message ID, uvarint length of the
// sender's node ID, the node ID, then the opaque payload.
const (
	kindDirect    = 1
	kindBroadcast = 2 // a broadcast's gossip copy: receivers pass it on
	kindReliable  = 3 // a broadcast's TCP copy: receivers do not
	// kindAdvice is a Gossip message: receivers pass it on, fewer times
	// than a broadcast. (Nodes older than this kind drop it as a bad
	// header; advice is repeated and optional, so they only miss it.)
	kindAdvice   = 4
	frameMaxHead = 1 + 8 + binary.MaxVarintLen64 + maxNodeIDLen
	maxQueued    = 256 // gossip broadcasts kept queued at most
)

type inbound struct {
	from string
	msg  []byte
}

func (m *Membership) frame(kind byte, msg []byte) ([]byte, uint64) {
	id := rand.Uint64()
	b := make([]byte, 0, frameMaxHead+len(msg))
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, id)
	b = appendString(b, m.cfg.Name)
	return append(b, msg...), id
}

func parseFrame(b []byte) (kind byte, id uint64, from string, msg []byte, err error) {
	if len(b) < 10 || b[0] < kindDirect || b[0] > kindAdvice {
		return 0, 0, "", nil, errors.New("bad header")
	}
	kind, id = b[0], binary.BigEndian.Uint64(b[1:9])
	n, k := binary.Uvarint(b[9:])
	if k <= 0 || n == 0 || n > maxNodeIDLen || n > uint64(len(b)-9-k) {
		return 0, 0, "", nil, errors.New("bad sender")
	}
	rest := b[9+k:]
	return kind, id, string(rest[:n]), rest[n:], nil
}

// SendTo sends msg to one member over memberlist's reliable (TCP) channel.
func (m *Membership) SendTo(nodeID string, msg []byte) error {
	if err := m.sendable(msg); err != nil {
		return err
	}
	n, ok := m.peer(nodeID)
	if !ok || !m.admits(nodeID) {
		return fmt.Errorf("%w: %q", ErrUnknownNode, nodeID)
	}
	f, _ := m.frame(kindDirect, msg)
	if err := m.ml.Load().SendReliable(n, f); err != nil {
		return fmt.Errorf("site: send to %s: %w", nodeID, err)
	}
	return nil
}

// Broadcast sends msg to every other live member: over TCP (SendReliable) to
// each member in this node's view, and, when it fits a gossip packet, also by
// epidemic gossip (a TransmitLimitedQueue; receivers of the gossip copy pass
// it on), which reaches members this node does not see yet. Receivers
// deliver each message once. The error lists the members the TCP send
// failed for. It costs a TCP stream per member: for frequent advisory
// messages use Gossip.
func (m *Membership) Broadcast(msg []byte) error {
	if err := m.sendable(msg); err != nil {
		return err
	}
	f, id := m.frame(kindBroadcast, msg)
	if len(f) <= m.gossipMax {
		m.queueGossip(f, id)
	}
	f = slices.Clone(f)
	f[0] = kindReliable
	ml := m.ml.Load()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, n := range m.livePeers() {
		if n.Name == m.cfg.Name {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := ml.SendReliable(n, f); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("site: broadcast: %w", errors.Join(errs...))
	}
	return nil
}

// Gossip sends msg to the site by epidemic gossip only: it rides on
// memberlist's gossip packets (a few per interval, whatever the number of
// messages), so it is cheap, but it takes a few gossip rounds to spread and
// may miss a member; use it for advice that is repeated, such as which
// fragments a node has. Each member passes it on AdviceTransmits times,
// whatever the site's size (a broadcast's gossip copy scales with the log
// of it), and it gets only the room broadcasts leave in a packet. A
// message too big for a gossip packet goes out as a Broadcast.
func (m *Membership) Gossip(msg []byte) error {
	if err := m.sendable(msg); err != nil {
		return err
	}
	f, id := m.frame(kindAdvice, msg)
	if len(f) > m.gossipMax {
		return m.Broadcast(msg)
	}
	m.queueGossip(f, id)
	return nil
}

// sendable checks a message this node is about to send.
func (m *Membership) sendable(msg []byte) error {
	if m.closed.Load() {
		return ErrShutdown
	}
	if len(msg) > m.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(msg), m.cfg.MaxMessageSize)
	}
	return nil
}

// queueGossip queues this node's frame f (a broadcast's or advice) for
// gossip, marked seen so that its copies coming back are not delivered.
func (m *Membership) queueGossip(f []byte, id uint64) {
	m.seen.add(m.cfg.Name, id)
	push(m.passOn(f[0]), f)
}

// push queues frame f on q, keeping q to maxQueued frames.
func push(q *memberlist.TransmitLimitedQueue, f []byte) {
	q.QueueBroadcast(gossip(f))
	q.Prune(maxQueued)
}

// GossipLimit is the largest message Gossip sends as gossip.
func (m *Membership) GossipLimit() int { return m.gossipMax - frameMaxHead }

// receive handles a user message from memberlist (gossip or TCP). b belongs
// to memberlist: copy what is kept.
func (m *Membership) receive(b []byte) {
	if m.cfg.OnMessage == nil {
		return
	}
	if len(b) > frameMaxHead+m.cfg.MaxMessageSize {
		m.drop("too large", len(b))
		return
	}
	kind, id, from, msg, err := parseFrame(b)
	if err != nil {
		m.drop(err.Error(), len(b))
		return
	}
	if len(msg) > m.cfg.MaxMessageSize {
		m.drop("too large", len(b))
		return
	}
	if !m.admits(from) {
		// Not passed on either: a member list makes it noise.
		m.drop("sender not admitted", len(b))
		return
	}
	if kind != kindDirect {
		if !m.seen.add(from, id) {
			return
		}
		if q := m.passOn(kind); q != nil && len(b) <= m.gossipMax {
			push(q, append([]byte(nil), b...))
		}
	}
	select {
	case m.inbox <- inbound{from: from, msg: append([]byte(nil), msg...)}:
	default:
		m.drop("OnMessage queue full", len(b))
	}
}

// passOn is the queue a received frame of kind is gossiped on from, or nil
// when receivers do not pass it on.
func (m *Membership) passOn(kind byte) *memberlist.TransmitLimitedQueue {
	switch kind {
	case kindBroadcast:
		return m.queue
	case kindAdvice:
		return m.advice
	}
	return nil
}

func (m *Membership) drop(why string, size int) {
	m.dropped.Add(1)
	m.log.Debug("message dropped", "why", why, "bytes", size)
}

// deliver calls OnMessage for queued messages, one at a time.
func (m *Membership) deliver() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case in := <-m.inbox:
			m.cfg.OnMessage(in.from, in.msg)
		}
	}
}

// gossip is a queued broadcast frame.
type gossip []byte

var _ memberlist.UniqueBroadcast = gossip(nil)

// UniqueBroadcast tells memberlist that no queued frame replaces another,
// which spares it a scan of the whole queue for every frame queued.
func (g gossip) UniqueBroadcast()                      {}
func (g gossip) Invalidates(memberlist.Broadcast) bool { return false }
func (g gossip) Message() []byte                       { return g }
func (g gossip) Finished()                             {}

// seenSet remembers the last size broadcast IDs, to deliver each once.
type seenSet struct {
	mu   sync.Mutex
	keys map[seenKey]struct{}
	ring []seenKey
	next int
}

type seenKey struct {
	from string
	id   uint64
}

func newSeenSet(size int) seenSet {
	return seenSet{keys: make(map[seenKey]struct{}, size), ring: make([]seenKey, size)}
}

// add records (from, id) and reports whether it is new.
func (s *seenSet) add(from string, id uint64) bool {
	k := seenKey{from, id}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k]; ok {
		return false
	}
	if old := s.ring[s.next]; old != (seenKey{}) {
		delete(s.keys, old)
	}
	s.ring[s.next] = k
	s.next = (s.next + 1) % len(s.ring)
	s.keys[k] = struct{}{}
	return true
}
