package net

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/relaymesh/relaymesh/p2p"
)

// View is one host's p2p.Shaper on the shared Network.
type View struct {
	n    *Network
	self peer.ID
}

var _ p2p.Shaper = (*View)(nil)

// endpoint is one side of a transfer: a node, or the coordinator (h nil).
type endpoint struct {
	h       *host
	isCoord bool
}

func (n *Network) endpoint(id peer.ID) endpoint {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if id == "" || id == n.coordID {
		return endpoint{isCoord: true}
	}
	return endpoint{h: n.hosts[id]}
}

func (e endpoint) site() *site {
	if e.h == nil {
		return nil
	}
	return e.h.site
}

// crosses reports whether a transfer between a and b crosses a's site
// boundary.
func crosses(a, b endpoint) bool {
	return a.site() != nil && a.site() != b.site()
}

// Send charges n bytes that self is about to send to peer to: self's
// uplink (the coordinator's when self is the origin) and, when to is
// outside self's site, the site's WAN uplink.
func (v *View) Send(ctx context.Context, to peer.ID, n int) error {
	from, dst := v.n.endpoint(v.self), v.n.endpoint(to)
	if err := v.n.waitPartition(ctx, from, dst); err != nil {
		return err
	}
	var bs []*rate.Limiter
	switch {
	case from.isCoord:
		bs = append(bs, v.n.coordUp)
		v.n.coordOut.Add(int64(n))
	case from.h != nil:
		bs = append(bs, from.h.up)
		if crosses(from, dst) {
			bs = append(bs, from.h.site.up)
			from.h.site.out.Add(int64(n))
		}
	}
	return v.n.wait(ctx, bs, n, 0)
}

// Recv charges n bytes that self received from peer from: self's
// downlink and, when from is outside self's site, the site's WAN
// downlink; the first chunk of each fragment also pays the link's one-way
// latency.
func (v *View) Recv(ctx context.Context, from peer.ID, n int) error {
	to, src := v.n.endpoint(v.self), v.n.endpoint(from)
	if err := v.n.waitPartition(ctx, src, to); err != nil {
		return err
	}
	if to.h == nil {
		return nil // the coordinator does not fetch
	}
	bs := []*rate.Limiter{to.h.down}
	if crosses(to, src) {
		bs = append(bs, to.h.site.down)
		to.h.site.in.Add(int64(n))
	}
	var lat time.Duration
	to.h.mu.Lock()
	before := to.h.recvd[from]
	to.h.recvd[from] = before + int64(n)
	to.h.mu.Unlock()
	if fs := int64(v.n.cfg.FragmentSize); fs > 0 && before%fs == 0 {
		lat = latency(src, to)
	}
	return v.n.wait(ctx, bs, n, lat)
}

// latency is the one-way delay between a and b.
func latency(a, b endpoint) time.Duration {
	sa, sb := a.site(), b.site()
	switch {
	case sa != nil && sa == sb:
		return sa.link.LANLatency
	case sa == nil && sb == nil:
		return 0
	case sa == nil:
		return sb.link.WANLatency
	case sb == nil:
		return sa.link.WANLatency
	default:
		return sa.link.WANLatency + sb.link.WANLatency
	}
}

// waitPartition blocks while a transfer between a and b crosses a
// partition between a site and the coordinator.
func (n *Network) waitPartition(ctx context.Context, a, b endpoint) error {
	for {
		var cut chan struct{}
		n.mu.RLock()
		switch {
		case a.isCoord && b.site() != nil:
			cut = b.site().cut
		case b.isCoord && a.site() != nil:
			cut = a.site().cut
		}
		n.mu.RUnlock()
		if cut == nil {
			return nil
		}
		select {
		case <-cut:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wait reserves n tokens on every bucket at once and sleeps for the
// longest of their delays plus extra: a chunk moves at the pace of its
// narrowest link, and every link it crosses is busy for it.
func (n *Network) wait(ctx context.Context, bs []*rate.Limiter, size int, extra time.Duration) error {
	d, rs, err := n.reserve(n.now(), bs, size)
	if err != nil {
		return err
	}
	if err := n.sleep(ctx, d+extra); err != nil {
		now := n.now()
		for _, r := range rs {
			r.CancelAt(now)
		}
		return err
	}
	return nil
}

// reserve takes size tokens from every bucket at now and returns the
// longest delay.
func (n *Network) reserve(now time.Time, bs []*rate.Limiter, size int) (time.Duration, []*rate.Reservation, error) {
	var d time.Duration
	rs := make([]*rate.Reservation, 0, len(bs))
	for _, b := range bs {
		var bd time.Duration
		// A chunk larger than the burst is taken in burst-sized pieces.
		for left := size; left > 0; left -= b.Burst() {
			r := b.ReserveN(now, min(left, b.Burst()))
			if !r.OK() {
				for _, x := range rs {
					x.CancelAt(now)
				}
				return 0, nil, fmt.Errorf("%w: %d > %d", ErrChunkTooBig, size, b.Burst())
			}
			rs = append(rs, r)
			bd = r.DelayFrom(now)
		}
		d = max(d, bd)
	}
	return d, rs, nil
}
