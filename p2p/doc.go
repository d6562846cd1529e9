// Package p2p holds relaymesh's libp2p host and the protocols it speaks:
// length-prefixed JSON framing, a generic request/response helper, and the
// fragment protocol that moves content-addressed bytes between peers.
//
// The host is built so that it never reaches out on its own: TCP only,
// Noise only, yamux, no relay, no NAT port mapping, no hole punching, no
// AutoNAT service, no mDNS, no DHT. Every connection is made because
// relaymesh code asked for it, and the connection Gater decides which
// peers get in.
package p2p
