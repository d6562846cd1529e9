package simulations

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/simulations/vnet"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// watch polls the deployment until every live node is final, applying
// faults when their time comes, or until the scenario's timeout.
func (f *fleet) watch(ctx context.Context, depID string, m *core.Manifest, t0 time.Time, progress func(string, int, int)) error {
	pending := slices.Clone(f.sc.s.faults)
	deadline := t0.Add(f.sc.s.timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		d, err := f.coord.Deployment(depID)
		if err != nil {
			return err
		}
		final := map[string]bool{}
		done := 0
		for _, r := range d.Nodes {
			if r.State.Final() {
				final[r.Name] = true
				done++
			}
		}
		if progress != nil {
			progress(f.strategy, done, len(f.nodes))
		}
		allDone := true
		for _, n := range f.nodes {
			n.mu.Lock()
			killed := n.killed
			n.mu.Unlock()
			if !killed && !final[n.name] {
				allDone = false
			}
		}
		if allDone {
			// Every node is done: a fault still waiting can change
			// nothing (a relay to kill in the direct strategy, a fault
			// timed after the transfer).
			for _, ft := range pending {
				f.log.Warn("fault not applied: every node finished first, or it does not apply to this strategy",
					"kind", ft.Kind, "site", ft.Site, "node", ft.Node, "strategy", f.strategy)
			}
			return nil
		}
		pending = f.applyDue(pending, m, t0)
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d nodes final after %s; unfinished: %s", ErrTimeout, done, len(f.nodes),
				f.sc.s.timeout, f.unfinished(d.Nodes, final))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// unfinished describes up to 5 live nodes that are not final: their
// state at the coordinator and what they see of their site.
func (f *fleet) unfinished(rows []coordinator.RowView, final map[string]bool) string {
	state := map[string]string{}
	for _, r := range rows {
		state[r.Name] = string(r.State)
	}
	var out []string
	count := 0
	for _, n := range f.nodes {
		nd := n.running()
		if nd == nil || final[n.name] {
			continue
		}
		count++
		if len(out) < 5 {
			st := nd.MeshStats()
			out = append(out, fmt.Sprintf("%s (%s; sees %d members, relays %v, relay itself %t; fragments from peers %d, relay %d, coordinator %d, corrupt %d, failed %d)",
				n.name, state[n.name], nd.SiteMembers(), len(nd.Relays()), nd.IsRelay(),
				st.FromPeers, st.FromRelay, st.FromCoordinator, st.Corrupt, st.Failed))
		}
	}
	if count > len(out) {
		out = append(out, fmt.Sprintf("and %d more", count-len(out)))
	}
	return strings.Join(out, "; ")
}

// applyDue applies the faults whose time has come and returns the rest.
func (f *fleet) applyDue(pending []fault, m *core.Manifest, t0 time.Time) []fault {
	var rest []fault
	for _, ft := range pending {
		if !f.due(ft, m, t0) {
			rest = append(rest, ft)
			continue
		}
		if err := f.apply(ft); err != nil {
			f.log.Warn("fault failed", "kind", ft.Kind, "site", ft.Site, "node", ft.Node, "err", err)
		} else {
			f.log.Info("fault applied", "kind", ft.Kind, "site", ft.Site, "node", ft.Node, "at", time.Since(t0).Round(time.Millisecond))
			f.marks = append(f.marks, FaultMark{AtS: time.Since(t0).Seconds(), What: ft.label()})
		}
	}
	return rest
}

// due: a duration fault after that long; a percentage fault when its
// target holds that fraction of the package: the site's current relay
// for kill-relay, the site's nodes on average for a site fault, the fleet
// otherwise.
func (f *fleet) due(ft fault, m *core.Manifest, t0 time.Time) bool {
	if ft.Kind == KindCorruptPeer {
		return true // applied at start; nothing left to do
	}
	if ft.pct == 0 {
		return time.Since(t0) >= ft.after
	}
	var ns []*simNode
	switch {
	case ft.Kind == KindKillRelay:
		if r := f.relayOf(ft.Site - 1); r != nil {
			ns = []*simNode{r}
		}
	case ft.Site > 0:
		ns = f.bySite[ft.Site-1]
	default:
		ns = f.nodes
	}
	return holding(ns, m) >= ft.pct
}

// holding is the average fraction of the package that ns hold.
func holding(ns []*simNode, m *core.Manifest) float64 {
	frags := m.FragmentCIDs()
	if len(frags) == 0 || len(ns) == 0 {
		return 0
	}
	have := 0
	for _, n := range ns {
		for _, c := range frags {
			if ok, _ := n.store.Has(c); ok {
				have++
			}
		}
	}
	return float64(have) / float64(len(frags)*len(ns))
}

// relayOf is site si's first relay among its running nodes.
func (f *fleet) relayOf(si int) *simNode {
	for _, n := range f.bySite[si] {
		if nd := n.running(); nd != nil && nd.IsRelay() {
			return n
		}
	}
	return nil
}

func (f *fleet) apply(ft fault) error {
	switch ft.Kind {
	case KindKillNode:
		n := f.bySite[ft.Site-1][ft.Node-1]
		f.wg.Go(func() { f.kill(n) })
	case KindKillRelay:
		r := f.relayOf(ft.Site - 1)
		if r == nil {
			return fmt.Errorf("simulations: site %d has no running relay", ft.Site)
		}
		f.wg.Go(func() { f.kill(r) })
	case KindPartition:
		return f.net.Partition(f.sites[ft.Site-1])
	case KindHeal:
		return f.net.Heal(f.sites[ft.Site-1])
	case KindSlowPeer:
		return f.bySite[ft.Site-1][ft.Node-1].ep.SetSlow(ft.Factor)
	case KindLateJoin:
		n := f.bySite[ft.Site-1][ft.Node-1]
		f.wg.Go(func() {
			if err := f.start(n); err != nil {
				f.log.Warn("late join failed", "node", n.name, "err", err)
			}
		})
	}
	return nil
}

// collect fills res from the deployment's rows, the installers and the
// network's counters.
func (f *fleet) collect(res *Result, depID string, t0 time.Time, before vnet.Stats, size int64) {
	d, err := f.coord.Deployment(depID)
	if err != nil {
		res.Error = err.Error()
		return
	}
	rows := map[string]core.State{}
	for _, r := range d.Nodes {
		rows[r.Name] = r.State
	}
	for _, n := range f.nodes {
		n.mu.Lock()
		killed := n.killed
		n.mu.Unlock()
		if nd := n.running(); nd != nil {
			st := nd.MeshStats()
			res.Sources.Peers += st.FromPeers
			res.Sources.Relay += st.FromRelay
			res.Sources.Coordinator += st.FromCoordinator
			res.Sources.RelayUpstream += st.FromUpstreamAsRelay
			res.Sources.OtherSites += st.FromOtherSites
			res.Sources.Corrupt += st.Corrupt
			res.Sources.Failed += st.Failed
			res.Sources.TooSlow += st.TooSlow
			res.Sources.Hedges += st.Hedges
			res.Sources.HedgeWins += st.HedgeWins
		}
		at, corrupt := n.inst.result()
		if corrupt {
			res.CorruptInstalls++
		}
		st := rows[n.name]
		switch {
		case st == core.StateSuccess:
			res.Succeeded++
			if !at.IsZero() {
				res.CompletionS = append(res.CompletionS, at.Sub(t0).Seconds())
			}
		case killed:
			res.Killed++
		case st.Final():
			res.Failed++
		default:
			res.Unfinished++
		}
	}
	slices.Sort(res.CompletionS)
	res.Faults = slices.Clone(f.marks)
	if k := len(res.CompletionS); k > 0 {
		res.TLast = res.CompletionS[k-1]
		res.TMedian = median(res.CompletionS)
	}
	if res.TStar > 0 {
		res.RatioToTStar = res.TLast / res.TStar
	}
	after := f.net.Stats()
	s := float64(size)
	for _, name := range f.sites {
		res.WANInOverSize = append(res.WANInOverSize, float64(after.SiteIn[name]-before.SiteIn[name])/s)
		res.WANOutOverSize = append(res.WANOutOverSize, float64(after.SiteOut[name]-before.SiteOut[name])/s)
	}
	res.OriginEgressOverSize = float64(after.CoordinatorOut-before.CoordinatorOut) / s
}

func median(sorted []float64) float64 {
	k := len(sorted)
	if k%2 == 1 {
		return sorted[k/2]
	}
	return (sorted[k/2-1] + sorted[k/2]) / 2
}
