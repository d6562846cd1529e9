// Package node is the relaymesh daemon that runs on every endpoint.
//
// A node enrolls once with a coordinator (Enroll), which pins the
// coordinator's order keys and gives the node its identity on the mesh.
// Run then keeps it going: it takes signed orders in (pushed by the
// coordinator over core.ProtoOrders, and pulled over core.ProtoSync on
// start, every SyncInterval and whenever the coordinator connection comes
// back), verifies each with core.Verifier, fetches manifests and fragments
// into its badger cache, installs through node/runner one order at a time,
// and reports every state change through a durable, signed status outbox.
//
// Everything the node must remember across a restart lives in the cache's
// KV area:
//
//	trust/seq/<keyid>   highest order sequence accepted per order key (decimal)
//	trust/seen/<keyid>/<%020d seq>  an accepted sequence inside the replay window (core.ReplayWindow)
//	order/<orderID>     the accepted order's signed envelope (JSON)
//	refused/<orderID>   sha256 of a refused order's payload, so redelivery is quiet
//	cancelled/<orderID> the ID of the accepted cancel order naming orderID, whether or not
//	                    the order had arrived: a deploy order that comes later is never run
//	job/<orderID>       a deploy order's job: phase, attempts, per-package results
//	installed/<pkgCID>  packages installed here (runner.Installed), value the order ID
//	status/seq          the last status report sequence number used (decimal)
//	outbox/<%020d seq>  a signed status report not yet acknowledged (envelope JSON)
package node
