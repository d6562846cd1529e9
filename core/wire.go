package core

import "time"

// Messages the coordinator, relays and nodes exchange over libp2p, each as
// one length-prefixed JSON frame (see package p2p). Field names are the
// wire format: change them only with a new protocol version.

// Protocol IDs.
const (
	ProtoEnroll = "/relaymesh/enroll/1.0.0" // node → coordinator
	ProtoSync   = "/relaymesh/sync/1.0.0"   // node → coordinator (or relay): heartbeat + order catch-up
	ProtoOrders = "/relaymesh/orders/1.0.0" // coordinator or relay → node: push
	ProtoStatus = "/relaymesh/status/1.0.0" // node or relay → coordinator (or relay)
)

// NodeInfo is what a node tells about itself when it enrolls and syncs.
type NodeInfo struct {
	Hostname   string   `json:"hostname"`
	OS         string   `json:"os"`
	Arch       string   `json:"arch"`
	Version    string   `json:"version"`
	Addrs      []string `json:"addrs"`                 // libp2p multiaddrs
	GossipAddr string   `json:"gossip_addr,omitempty"` // memberlist host:port
	Relay      bool     `json:"relay,omitempty"`       // currently elected relay of its site
	// Traffic counts the bytes this node exchanged since it started.
	Traffic *Traffic `json:"traffic,omitempty"`
	// Unreachable are the site members (node IDs) this node recently
	// failed to connect to at the addresses they advertise; at most
	// MaxUnreachable.
	Unreachable []string `json:"unreachable,omitempty"`
}

// MaxUnreachable bounds NodeInfo.Unreachable and SyncResponse.UnreachableBy.
const MaxUnreachable = 16

// Traffic is a node's byte counters by peer class, since it started.
type Traffic struct {
	FromCoordinator int64 `json:"from_coordinator"`
	FromOtherSites  int64 `json:"from_other_sites"`
	FromSite        int64 `json:"from_site"`
	ToSite          int64 `json:"to_site"`
	ToOutside       int64 `json:"to_outside"`
}

// EnrollRequest presents a join token.
type EnrollRequest struct {
	Token string   `json:"token"`
	Info  NodeInfo `json:"info"`
}

// Member is a site member a node can join or fetch from.
type Member struct {
	NodeID     string   `json:"node"`
	Addrs      []string `json:"addrs"`
	GossipAddr string   `json:"gossip_addr,omitempty"`
}

// EnrollResponse gives an enrolled node what it needs to take part.
type EnrollResponse struct {
	NodeID      string   `json:"node"`
	Site        string   `json:"site"`
	Tags        []string `json:"tags,omitempty"`
	OrderKeys   []string `json:"order_keys"`  // PEM public keys to pin
	GossipKeys  [][]byte `json:"gossip_keys"` // memberlist keyring, primary first
	Coordinator string   `json:"coordinator"` // the coordinator's peer ID
	SiteMembers []Member `json:"site_members,omitempty"`
	// MaxOrderLifetime is the coordinator's maximum order lifetime
	// (expires minus not-before), in seconds; the node pins it and refuses
	// deploy orders that live longer. 0: no maximum (an older coordinator).
	MaxOrderLifetime int64 `json:"max_order_lifetime_s,omitempty"`
	// MemberList is the coordinator's signed MemberList (TypeMemberList)
	// of the node's site, the node itself included.
	MemberList *Envelope `json:"member_list,omitempty"`
}

// SyncRequest is a node's heartbeat and catch-up request: it asks for the
// orders addressed to it with a sequence above AfterSeq and, when Window is
// set, those with a sequence in (AfterSeq-Window, AfterSeq] that it has not
// reported on yet.
type SyncRequest struct {
	AfterSeq uint64 `json:"after_seq"`
	// Window is how many sequences at and below AfterSeq the node still
	// accepts (ReplayWindow): orders there may have been pushed to it and
	// lost while a later one got through. 0 (a node older than the
	// replay window) asks for nothing below AfterSeq.
	Window uint64   `json:"window,omitempty"`
	Info   NodeInfo `json:"info"`
	// SeenMembers is how many site members the node sees (itself
	// included); the coordinator lists members only when it knows more.
	SeenMembers int `json:"seen_members,omitempty"`
	// Clock is the node's clock when it sent the request, and LastRTT
	// the round trip of its previous sync (0 for the first): the
	// coordinator estimates the node's clock offset from them.
	Clock   time.Time     `json:"clock,omitzero"`
	LastRTT time.Duration `json:"last_rtt,omitempty"`
	// MembersVersion is the version of the member list the node holds
	// (0: none); the coordinator sends a newer one.
	MembersVersion uint64 `json:"members_version,omitempty"`
	// GossipKeys are the fingerprints (GossipKeyID) of the gossip keyring
	// the node holds, primary first: the coordinator's confirmation of a
	// rotation step, and its cue to send GossipRing.
	GossipKeys []string `json:"gossip_keys,omitempty"`
}

// SyncResponse returns pending orders, in sequence order, and the site view.
type SyncResponse struct {
	Orders      []*Envelope `json:"orders,omitempty"`
	SiteMembers []Member    `json:"site_members,omitempty"`
	// UnreachableBy names the site members that reported they cannot
	// connect to this node at the addresses it advertises.
	UnreachableBy []string `json:"unreachable_by,omitempty"`
	// MemberList, when the node's MembersVersion is behind, is the
	// coordinator's signed MemberList (TypeMemberList) of its site.
	MemberList *Envelope `json:"member_list,omitempty"`
	// GossipRing, when the node's GossipKeys differ from its site's
	// keyring, is that keyring. Only here, on the node's own stream with
	// the coordinator, do gossip keys travel after enrollment.
	GossipRing *GossipRing `json:"gossip_ring,omitempty"`
}

// OrdersPush delivers signed orders; nodes verify each themselves.
type OrdersPush struct {
	Orders []*Envelope `json:"orders"`
	// Relays, in a push to a relay, are the live relays of the other
	// sites: the origin may send this relay to them for fragments, and
	// they may come to it.
	Relays []Member `json:"relays,omitempty"`
	// MemberList is the coordinator's current signed MemberList of the
	// node's site, so that a relay named in Relays is admitted at once.
	MemberList *Envelope `json:"member_list,omitempty"`
}

// MaxPushRelays bounds OrdersPush.Relays.
const MaxPushRelays = 4096

// OrdersAck acknowledges a push.
type OrdersAck struct {
	Accepted int `json:"accepted"`
}

// StatusBatch carries node-signed status reports upward.
type StatusBatch struct {
	Reports []*Envelope `json:"reports"`
}

// Per-report outcomes in a StatusAck.
const (
	AckApplied   = "applied"
	AckDuplicate = "duplicate"
	AckRejected  = "rejected" // permanent: do not resend
)

// StatusAck answers a StatusBatch report by report.
type StatusAck struct {
	Results []string `json:"results"`
	Errors  []string `json:"errors,omitempty"`
	// Receipt is the coordinator's signed Receipt (TypeReceipt); relays
	// pass it back unchanged. Nodes act on it, not on Results.
	Receipt *Envelope `json:"receipt,omitempty"`
}
