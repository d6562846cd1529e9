// Package net is the simulator's shaped network: one Network object holds
// token buckets for every node's uplink and downlink, every site's WAN
// uplink and downlink (shared by all traffic crossing that site's
// boundary) and the coordinator's uplink, plus per-link latency,
// partitions between a site and the coordinator, slow peers, and the byte
// counters of every site boundary. Each host gets a View, a p2p.Shaper
// that knows which host it is; the fragment server and client call it per
// chunk of payload.
//
// Import it as simnet.
package net
