package mesh

import (
	"encoding/json"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

const (
	maxHaveBatch = 256 // CIDs in a "have" message at most
	// gossipHaveBatch CIDs (about 62 bytes each in JSON) keep a "have"
	// message inside one gossip packet.
	gossipHaveBatch = 16
)

// message is what nodes of a site gossip: fragments they have, or signed
// orders passed on by the relay. Everything in it is checked on arrival:
// a "have" only steers where to fetch from (bytes are verified against
// their CID), and orders are verified by the node's own Verifier.
type message struct {
	Kind   string           `json:"k"`
	Have   []string         `json:"h,omitempty"`
	Orders []*core.Envelope `json:"o,omitempty"`
}

func encodeHave(cs []cid.Cid) []byte {
	m := message{Kind: "have", Have: make([]string, len(cs))}
	for i, c := range cs {
		m.Have[i] = c.String()
	}
	b, _ := json.Marshal(m)
	return b
}

// BroadcastOrders passes signed orders to the site's members.
func (m *Mesh) BroadcastOrders(envs []*core.Envelope) error {
	if m.cfg.Members == nil || len(envs) == 0 {
		return nil
	}
	b, err := json.Marshal(message{Kind: "orders", Orders: envs})
	if err != nil {
		return err
	}
	return m.cfg.Members.Broadcast(b)
}

// HandleMessage takes a site message: "have" announcements update the
// directory; orders are returned for the node to verify and take in.
// Garbage is dropped.
func (m *Mesh) HandleMessage(from string, msg []byte) []*core.Envelope {
	var in message
	if err := json.Unmarshal(msg, &in); err != nil {
		m.log.Debug("site message dropped", "from", from, "err", err)
		return nil
	}
	switch in.Kind {
	case "have":
		p, err := p2p.DecodePeerID(from)
		if err != nil || p == m.cfg.Host.ID() || len(in.Have) > maxHaveBatch {
			return nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		added := false
		for _, s := range in.Have {
			c, err := core.ParseCID(s)
			if err != nil {
				continue
			}
			set := m.dir[c]
			if set == nil {
				set = map[peer.ID]struct{}{}
				m.dir[c] = set
			}
			if _, ok := set[p]; !ok {
				set[p] = struct{}{}
				added = true
			}
		}
		if added && m.haveCh != nil {
			close(m.haveCh)
			m.haveCh = nil
		}
	case "orders":
		return in.Orders
	}
	return nil
}
