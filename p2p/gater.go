package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater lets only enrolled peers connect. The zero value is a closed gater
// with an empty allowlist.
//
// In closed mode a peer not on the allowlist is refused both ways: we do
// not dial it (InterceptPeerDial) and its authenticated connection is
// dropped (InterceptSecured). In Open mode (the coordinator, which must let
// not-yet-enrolled nodes reach its enrollment handler) every peer gets a
// connection and each handler checks enrollment itself.
//
// Revoke only affects new connections; close existing ones with
// h.Network().ClosePeer(id).
type Gater struct {
	// Open accepts any peer at the connection level. Set it before the
	// host starts; it is read without locking.
	Open bool

	mu      sync.RWMutex
	allowed map[peer.ID]struct{}
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// Allow adds ids to the allowlist.
func (g *Gater) Allow(ids ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.allowed == nil {
		g.allowed = make(map[peer.ID]struct{}, len(ids))
	}
	for _, id := range ids {
		g.allowed[id] = struct{}{}
	}
}

// Replace makes ids the whole allowlist, dropping every other peer.
func (g *Gater) Replace(ids ...peer.ID) {
	allowed := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		allowed[id] = struct{}{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.allowed = allowed
}

// Revoke removes id from the allowlist.
func (g *Gater) Revoke(id peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.allowed, id)
}

// Allowed reports whether id is on the allowlist, whatever the mode.
func (g *Gater) Allowed(id peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, ok := g.allowed[id]
	return ok
}

func (g *Gater) admits(id peer.ID) bool { return g.Open || g.Allowed(id) }

// InterceptPeerDial refuses to dial peers that are not admitted.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return g.admits(p) }

// InterceptAddrDial allows every address; the peer was checked already.
func (g *Gater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptAccept allows the raw connection; the peer is not known yet.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses authenticated connections of peers not admitted.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.admits(p)
}

// InterceptUpgraded allows every connection that got this far.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
