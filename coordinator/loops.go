package coordinator

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

const maxAckBytes = 1 << 20

// pushJob is one push: a node's pending orders (env nil), or one order
// for a relay to pass to its site.
type pushJob struct {
	node string
	env  *core.Envelope
}

// dispatchLocked hands a new order to the mesh: to the live relays of each
// site that has them (they pass it to their site), and straight to the
// targets of sites without a known relay. Nodes that miss it get it on
// their next sync.
func (c *Coordinator) dispatchLocked(env *core.Envelope, targets []string) {
	now := c.now()
	relays := map[string][]string{}
	for _, n := range c.st.nodes {
		if n.Relay && now.Sub(n.LastSeen) < c.cfg.OnlineWindow {
			relays[n.Site] = append(relays[n.Site], n.ID)
		}
	}
	var direct []string
	sites := map[string]bool{}
	for _, t := range targets {
		n := c.st.nodes[t]
		switch {
		case n == nil:
		case len(relays[n.Site]) > 0:
			sites[n.Site] = true
		default:
			direct = append(direct, t)
		}
	}
	for s := range sites {
		for _, r := range relays[s] {
			select {
			case c.pushq <- pushJob{node: r, env: env}:
			default:
			}
		}
	}
	c.pushLocked(direct)
}

// pushLocked queues nodes to be sent their pending orders. A node that
// cannot be reached gets them on its next sync.
func (c *Coordinator) pushLocked(nodes []string) {
	if c.pushq == nil {
		return
	}
	for _, n := range nodes {
		c.pushMu.Lock()
		if c.pushing[n] {
			c.pushMu.Unlock()
			continue
		}
		c.pushing[n] = true
		c.pushMu.Unlock()
		select {
		case c.pushq <- pushJob{node: n}:
		default:
			c.pushMu.Lock()
			delete(c.pushing, n)
			c.pushMu.Unlock()
		}
	}
}

func (c *Coordinator) pushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-c.pushq:
			if job.env != nil {
				c.pushTo(ctx, job.node, []*core.Envelope{job.env})
				continue
			}
			c.pushMu.Lock()
			delete(c.pushing, job.node)
			c.pushMu.Unlock()
			c.pushTo(ctx, job.node, nil)
		}
	}
}

// pushTo sends a node the given orders, or (orders nil) every order it
// has not reported on yet.
func (c *Coordinator) pushTo(ctx context.Context, node string, orders []*core.Envelope) {
	c.st.mu.RLock()
	n := c.st.nodes[node]
	var (
		addrs  []string
		relays []core.Member
		list   *core.Envelope
	)
	if n != nil {
		addrs = n.Addrs
		if orders == nil {
			orders = c.ordersForLocked(node, 0, true)
		}
		if n.Relay {
			relays = c.otherRelaysLocked(n.Site)
		}
		var err error
		if list, err = c.memberListLocked(n.Site); err != nil {
			c.log.Error("push: cannot sign the member list; pushing without it", "node", node, "err", err)
		}
	}
	c.st.mu.RUnlock()
	if n == nil || len(orders) == 0 {
		return
	}
	pid, err := peer.Decode(node)
	if err != nil {
		return
	}
	info := addrInfo(pid, addrs)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PushTimeout)
	defer cancel()
	if err := c.host.Connect(ctx, info); err != nil {
		c.log.Debug("push: node unreachable, it will catch up on sync", "node", node, "err", err)
		return
	}
	if _, err := p2p.Call[core.OrdersPush, core.OrdersAck](ctx, c.host, pid, core.ProtoOrders, &core.OrdersPush{Orders: orders, Relays: relays, MemberList: list}, maxAckBytes); err != nil {
		c.log.Debug("push failed, node will catch up on sync", "node", node, "err", err)
	}
}

// sweepLoop applies the no-feedback timers.
func (c *Coordinator) sweepLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sweep()
		}
	}
}

// Sweep marks rows whose node went silent while it should be working as
// ERR_TIMEOUT "no feedback". The timer runs for rows in NOTIFIED,
// DOWNLOADING or INSTALLING once the order is due (NOTIFIED rows of an
// order with a maintenance window wait for it and are left alone); it starts at the later
// of the last report and not-before, and while installing it also allows
// the order's own timeout. A later report still updates the row.
func (c *Coordinator) Sweep() int {
	now := c.now().UTC()
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	var pairs []kvPair
	type upd struct {
		dep, node string
		row       *Row
	}
	var upds []upd
	for id, d := range c.st.deps {
		if d.Cancelled || now.Before(d.NotBefore) {
			continue
		}
		for node, r := range c.st.rows[id] {
			switch r.State {
			case core.StateDownloading, core.StateInstalling:
			case core.StateNotified:
				if d.Window != "" {
					continue // waiting for its window, in its own time zone
				}
			default:
				continue
			}
			start := r.LastReport
			if start.Before(d.NotBefore) {
				start = d.NotBefore
			}
			limit := c.cfg.NoFeedback
			if r.State == core.StateInstalling {
				limit += time.Duration(d.Timeout) * time.Second
			}
			if now.Sub(start) < limit {
				continue
			}
			cp := *r
			cp.State, cp.Detail, cp.NoFeedback, cp.Updated = core.ErrTimeout, "no feedback for "+limit.String(), true, now
			pairs = append(pairs, jsonPair(rowKey(id, node), &cp))
			upds = append(upds, upd{id, node, &cp})
		}
	}
	if len(pairs) == 0 {
		return 0
	}
	if err := c.st.write(pairs...); err != nil {
		c.log.Error("no-feedback sweep: write failed", "err", err)
		return 0
	}
	for _, u := range upds {
		c.st.rows[u.dep][u.node] = u.row
	}
	c.log.Info("no feedback: rows timed out", "rows", len(upds))
	return len(upds)
}
