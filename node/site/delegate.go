package site

import "github.com/hashicorp/memberlist"

// delegate adapts memberlist's callbacks to the Membership. memberlist may
// hold its node lock while calling the event methods, so they only copy the
// node and signal.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte { return d.m.nodeMeta(limit) }
func (d *delegate) NotifyMsg(b []byte)        { d.m.receive(b) }

// GetBroadcasts fills a gossip packet with broadcasts first, then with
// advisory gossip in the room left.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	msgs := d.m.queue.GetBroadcasts(overhead, limit)
	for _, b := range msgs {
		limit -= overhead + len(b)
	}
	return append(msgs, d.m.advice.GetBroadcasts(overhead, limit)...)
}
func (d *delegate) LocalState(bool) []byte          { return nil }
func (d *delegate) MergeRemoteState([]byte, bool)   {}
func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.m.notePeer(n) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.m.forgetPeer(n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.m.notePeer(n) }
