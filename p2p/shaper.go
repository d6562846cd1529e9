package p2p

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Shaper paces fragment bytes the way a real network would: the simulator
// implements it with shared token buckets for each node's uplink and
// downlink and each site's WAN link. Send is called by a server before it
// writes n payload bytes to peer to; Recv by a client after it read n
// bytes from peer from (blocking there backs the stream up, as a full
// receive window would). Nil means an unshaped network.
type Shaper interface {
	Send(ctx context.Context, to peer.ID, n int) error
	Recv(ctx context.Context, from peer.ID, n int) error
}

// WithShaper paces a fetch's received bytes through s.
func WithShaper(s Shaper) FetchOption {
	return func(o *fetchOptions) { o.shaper = s }
}
