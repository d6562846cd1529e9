// Package site is a node's membership in its site: one memberlist pool per
// site (LAN timings), node metadata gossiped with every member, and the
// deterministic relay election every member computes from its own view.
//
// Election is a pure function of the view (see Rank and Elect). Hysteresis
// needs to know who holds the role now; that is gossiped too: a node that
// computes itself as relay sets the relay-claim flag in its own Meta, and
// every member takes the claimants in its view as the incumbents. So two
// members with the same view compute the same relay set, whatever order
// they saw the events in.
//
// The package also carries small opaque messages around the site (signed
// orders): SendTo for one member, Broadcast for all of them.
package site

import "errors"

var (
	ErrBadMeta         = errors.New("site: malformed node meta")
	ErrMetaTooLarge    = errors.New("site: node meta too large")
	ErrBadConfig       = errors.New("site: invalid config")
	ErrNoSeedReached   = errors.New("site: no seed reached")
	ErrUnknownNode     = errors.New("site: unknown node")
	ErrMessageTooLarge = errors.New("site: message too large")
	ErrShutdown        = errors.New("site: membership shut down")
)
