package p2p

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Limits of a peer the host does not know (HostConfig.Enrolled says no):
// on a coordinator, a node that has yet to enroll. Enrollment needs one
// stream on one connection; these leave room for a retry and no more. A
// stream reserves yamux's 256 KiB receive window from its peer's memory,
// so StrangerMemory bounds what such a peer can make the host buffer.
const (
	StrangerConns   = 2
	StrangerStreams = 4
	StrangerMemory  = 2 << 20
)

// strangerLimit is the peer scope limit of a peer not enrolled.
var strangerLimit = &rcmgr.BaseLimit{
	Streams: StrangerStreams, StreamsInbound: StrangerStreams, StreamsOutbound: StrangerStreams,
	Conns: StrangerConns, ConnsInbound: StrangerConns, ConnsOutbound: StrangerConns,
	FD:     StrangerConns,
	Memory: StrangerMemory,
}

// peerLimiter gives enrolled peers the fleet's per-peer limits and every
// other peer strangerLimit. libp2p asks when it creates a peer's scope
// (its first connection); Promote raises a scope that exists already.
type peerLimiter struct {
	rcmgr.Limiter
	enrolled func(peer.ID) bool
}

func (l peerLimiter) GetPeerLimits(p peer.ID) rcmgr.Limit {
	if l.enrolled(p) {
		return l.Limiter.GetPeerLimits(p)
	}
	return strangerLimit
}

// Promote gives p, just enrolled, the per-peer limits of an enrolled peer
// on the connections it has open; libp2p would otherwise keep the
// stranger limits until its last connection closed.
func Promote(h host.Host, p peer.ID) {
	_ = h.Network().ResourceManager().ViewPeer(p, func(s network.PeerScope) error {
		if sl, ok := s.(rcmgr.ResourceScopeLimiter); ok && sl.Limit() == rcmgr.Limit(strangerLimit) {
			sl.SetLimit(fleetLimits().GetPeerLimits(p))
		}
		return nil
	})
}
