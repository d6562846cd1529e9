package coordinator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// DeploymentView is a deployment with its statistics.
type DeploymentView struct {
	ID string `json:"id"`
	// Kind is "" for a deployment, "scan" for a scan order.
	Kind string `json:"kind,omitempty"`
	// Uninstall: the order runs the packages' uninstall commands.
	Uninstall bool               `json:"uninstall,omitempty"`
	State     string             `json:"state"`
	Done      bool               `json:"done"`
	Packages  []string           `json:"packages"`
	Seq       uint64             `json:"seq"`
	Priority  int                `json:"priority"`
	Created   time.Time          `json:"created"`
	NotBefore time.Time          `json:"not_before"`
	Expires   time.Time          `json:"expires"`
	Window    string             `json:"window,omitempty"`
	Targets   int                `json:"targets"`
	Counts    map[core.State]int `json:"counts"`
	Validated int                `json:"validated,omitempty"`
	// ElapsedS is the seconds since the deployment began (created, or its
	// not-before if later): until now while it runs, until the last report
	// once it is done.
	ElapsedS float64 `json:"elapsed_s"`
	// BytesFetched is what the targets fetched so far of BytesTotal, the
	// packages' archive sizes times the targets.
	BytesFetched int64       `json:"bytes_fetched"`
	BytesTotal   int64       `json:"bytes_total"`
	Sites        []SiteCount `json:"sites"`
	Nodes        []RowView   `json:"nodes,omitempty"`
	// Archived are the rows deploy validate cleared, oldest node name
	// first; set only when asked (DeploymentArchive).
	Archived []RowView `json:"archived,omitempty"`
	// Resolved lists the target nodes; set in the answer to a create
	// (and a dry run).
	Resolved []TargetView `json:"resolved,omitempty"`
	// DryRun is set when nothing was signed or recorded.
	DryRun bool `json:"dry_run,omitempty"`
}

// SiteCount is a deployment's progress in one site.
type SiteCount struct {
	Site    string `json:"site"`
	Total   int    `json:"total"`
	Success int    `json:"success"`
	Failed  int    `json:"failed"`
	Pending int    `json:"pending"`
}

// RowView is one node's row of a deployment.
type RowView struct {
	Row
	Name string `json:"name"`
	Site string `json:"site"`
	// DurationS is the seconds from the node's first report past
	// WAITING_NOTIFICATION to its final one, or, while it works, to now.
	DurationS float64 `json:"duration_s,omitempty"`
}

// rowView renders r with its node's name and site and its duration.
func (c *Coordinator) rowViewLocked(r *Row, now time.Time) RowView {
	v := RowView{Row: *r, Site: "?"}
	if n := c.st.nodes[r.Node]; n != nil {
		v.Site, v.Name = n.Site, n.Name
	}
	if !r.Started.IsZero() {
		end := now
		switch {
		case !r.Finished.IsZero():
			end = r.Finished
		case r.State.Final(): // made final by the coordinator (no feedback, cancel)
			end = r.Updated
		}
		if d := end.Sub(r.Started); d > 0 {
			v.DurationS = d.Round(time.Millisecond).Seconds()
		}
	}
	return v
}

func (c *Coordinator) viewLocked(d *Deployment, detail bool) *DeploymentView {
	v := &DeploymentView{
		ID: d.ID, Kind: d.Kind, Uninstall: d.Uninstall, State: c.deployStateLocked(d), Packages: d.Packages, Seq: d.Seq, Priority: d.Priority,
		Created: d.Created, NotBefore: d.NotBefore, Expires: d.Expires, Window: d.Window,
		Counts: map[core.State]int{},
	}
	v.Done = v.State == DeployCompleted || v.State == DeployIncomplete && allFinal(c.st.rows[d.ID]) || v.State == DeployCancelled
	now := c.now().UTC()
	var size int64
	for _, p := range d.Packages {
		if rec := c.st.packages[p]; rec != nil && rec.Manifest != nil {
			size += rec.Manifest.Size
		}
	}
	var lastReport time.Time
	sites := map[string]*SiteCount{}
	for node, r := range c.st.rows[d.ID] {
		v.Targets++
		v.BytesFetched += r.BytesFetched
		v.BytesTotal += size
		if r.LastReport.After(lastReport) {
			lastReport = r.LastReport
		}
		if r.Validated {
			v.Validated++
			continue
		}
		v.Counts[r.State]++
		site := "?"
		if n := c.st.nodes[node]; n != nil {
			site = n.Site
		}
		sc := sites[site]
		if sc == nil {
			sc = &SiteCount{Site: site}
			sites[site] = sc
		}
		sc.Total++
		switch {
		case r.State.Installed():
			sc.Success++
		case r.State.Final():
			sc.Failed++
		default:
			sc.Pending++
		}
		if detail {
			v.Nodes = append(v.Nodes, c.rowViewLocked(r, now))
		}
	}
	start, end := d.Created, now
	if d.NotBefore.After(start) {
		start = d.NotBefore
	}
	if v.Done && !lastReport.IsZero() {
		end = lastReport
	}
	if e := end.Sub(start); e > 0 {
		v.ElapsedS = e.Round(time.Millisecond).Seconds()
	}
	for _, sc := range sites {
		v.Sites = append(v.Sites, *sc)
	}
	slices.SortFunc(v.Sites, func(a, b SiteCount) int { return strings.Compare(a.Site, b.Site) })
	slices.SortFunc(v.Nodes, func(a, b RowView) int {
		return strings.Compare(a.Site+"\x00"+a.Name+"\x00"+a.Node, b.Site+"\x00"+b.Name+"\x00"+b.Node)
	})
	return v
}

func allFinal(rows map[string]*Row) bool {
	for _, r := range rows {
		if !r.State.Final() {
			return false
		}
	}
	return true
}

// Deployment returns one deployment with per-node rows.
func (c *Coordinator) Deployment(id string) (*DeploymentView, error) {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	d := c.st.deps[id]
	if d == nil {
		return nil, fmt.Errorf("%w: deployment %s", ErrNotFound, id)
	}
	return c.viewLocked(d, true), nil
}

// DeploymentArchive is Deployment with the rows deploy validate cleared.
func (c *Coordinator) DeploymentArchive(id string) (*DeploymentView, error) {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	d := c.st.deps[id]
	if d == nil {
		return nil, fmt.Errorf("%w: deployment %s", ErrNotFound, id)
	}
	v := c.viewLocked(d, true)
	now := c.now().UTC()
	for _, r := range c.st.rows[id] {
		if r.Validated {
			v.Archived = append(v.Archived, c.rowViewLocked(r, now))
		}
	}
	for _, r := range c.st.archived[id] {
		v.Archived = append(v.Archived, c.rowViewLocked(r, now))
	}
	slices.SortFunc(v.Archived, func(a, b RowView) int {
		return strings.Compare(a.Site+"\x00"+a.Name+"\x00"+a.Node, b.Site+"\x00"+b.Name+"\x00"+b.Node)
	})
	return v, nil
}

// Deployments lists deployments, newest first, without per-node rows.
func (c *Coordinator) Deployments() []*DeploymentView {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	out := make([]*DeploymentView, 0, len(c.st.deps))
	for _, d := range c.st.deps {
		out = append(out, c.viewLocked(d, false))
	}
	slices.SortFunc(out, func(a, b *DeploymentView) int { return cmpU64(b.Seq, a.Seq) })
	return out
}

// NodeView is a node as the admin sees it.
type NodeView struct {
	NodeRecord
	Alive bool `json:"alive"`
	// UnreachableBy names the live site members that cannot connect to
	// this node at the addresses it advertises: a wrong listen/advertise
	// setting or a firewall.
	UnreachableBy []string `json:"unreachable_by,omitempty"`
	// ClockWarning is set when the node's clock offset is beyond the
	// skew an order is allowed (core.DefaultMaxSkew).
	ClockWarning string `json:"clock_warning,omitempty"`
}

// clockWarning says what is wrong with a node's clock, "" when nothing.
func clockWarning(n *NodeRecord) string {
	if !n.ClockKnown {
		return ""
	}
	off := n.ClockOffset
	if off < 0 {
		off = -off
	}
	if off-n.ClockBound <= core.DefaultMaxSkew {
		return ""
	}
	dir := "ahead of"
	if n.ClockOffset < 0 {
		dir = "behind"
	}
	return fmt.Sprintf("node clock is %s %s the coordinator's, beyond the allowed skew %s: orders issued now are refused as not yet valid until it is fixed (NTP)",
		off.Round(time.Second), dir, core.DefaultMaxSkew)
}

// Nodes lists enrolled nodes sorted by site and name.
func (c *Coordinator) Nodes() []NodeView {
	c.st.mu.RLock()
	defer c.st.mu.RUnlock()
	now := c.now()
	ns := c.st.sortedNodes()
	out := make([]NodeView, len(ns))
	for i, n := range ns {
		out[i] = NodeView{NodeRecord: *n, Alive: now.Sub(n.LastSeen) < c.cfg.OnlineWindow, UnreachableBy: c.unreachableByLocked(n, now), ClockWarning: clockWarning(n)}
		out[i].Above = nil
	}
	return out
}

// Node returns one node by ID or name.
func (c *Coordinator) Node(id string) (*NodeView, error) {
	for _, n := range c.Nodes() {
		if n.ID == id || n.Name == id {
			return &n, nil
		}
	}
	return nil, fmt.Errorf("%w: node %s", ErrNotFound, id)
}

// SiteView summarises one site.
type SiteView struct {
	Site    string   `json:"site"`
	Members int      `json:"members"`
	Alive   int      `json:"alive"`
	Relays  []string `json:"relays"`
	// WANIn is the bytes the site's nodes received from outside the site
	// (the coordinator or other sites) since they enrolled, summed from
	// their reports so that a node's restart does not lower it
	// (NodeRecord.TrafficTotal); LANIn what they received from each other.
	WANIn int64 `json:"wan_in"`
	LANIn int64 `json:"lan_in"`
	// Unreachable names the members some site peers cannot connect to
	// (see NodeView.UnreachableBy).
	Unreachable []string `json:"unreachable,omitempty"`
	// Versions counts the members by the relaymesh version they last
	// reported, most common first.
	Versions []VersionCount `json:"versions"`
	// Compliance is the site's patch compliance from its nodes' scans.
	Compliance Compliance `json:"compliance"`
	// KeyRotation is the site's latest gossip key rotation, nil when it
	// never had one.
	KeyRotation *KeyRotationView `json:"key_rotation,omitempty"`
}

// Sites lists the sites with their members and current relays (as the
// nodes last reported them).
func (c *Coordinator) Sites() []SiteView {
	m := map[string]*SiteView{}
	versions := map[string][]string{}
	for _, n := range c.Nodes() {
		versions[n.Site] = append(versions[n.Site], n.Version)
		s := m[n.Site]
		if s == nil {
			s = &SiteView{Site: n.Site, Relays: []string{}}
			m[n.Site] = s
		}
		s.Members++
		if t := n.TrafficTotal; t != nil {
			s.WANIn += t.FromCoordinator + t.FromOtherSites
			s.LANIn += t.FromSite
		}
		if n.Alive && len(n.UnreachableBy) > 0 {
			s.Unreachable = append(s.Unreachable, n.Name)
		}
		if n.Alive {
			s.Alive++
			if n.Relay {
				s.Relays = append(s.Relays, n.Name+" ("+n.ID+")")
			}
		}
	}
	c.st.mu.RLock()
	comp := c.siteComplianceLocked()
	c.st.mu.RUnlock()
	out := make([]SiteView, 0, len(m))
	for _, s := range m {
		s.Versions = CountVersions(versions[s.Site])
		if sc := comp[s.Site]; sc != nil {
			s.Compliance = *sc
		}
		s.KeyRotation = c.KeyRotationOf(s.Site)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b SiteView) int { return strings.Compare(a.Site, b.Site) })
	return out
}
