package coordinator

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// DeployRequest asks for a deployment. Target selectors add up (--node,
// --site, --tag, --all); OS then filters.
type DeployRequest struct {
	Packages []string `json:"packages"`
	// Updates makes a patch deployment (see patch.go): security, all,
	// NAME or NAME=VERSION, resolved from the targets' latest scans into
	// apt packages of the repositories' verified files.
	Updates   []string `json:"updates,omitempty"`
	Nodes     []string `json:"nodes,omitempty"` // IDs or names
	Sites     []string `json:"sites,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	OS        string   `json:"os,omitempty"`
	All       bool     `json:"all,omitempty"`
	NotBefore string   `json:"not_before,omitempty"` // RFC 3339; default now
	Window    string   `json:"window,omitempty"`
	Expires   string   `json:"expires,omitempty"`  // duration after not-before; default 24h, at most max_order_lifetime (168h)
	Priority  *int     `json:"priority,omitempty"` // default: the packages' lowest
	Bulk      bool     `json:"bulk,omitempty"`
	Reboot    string   `json:"reboot,omitempty"`  // never (default), if-needed, always
	Timeout   string   `json:"timeout,omitempty"` // whole-order install budget
	Prefetch  bool     `json:"prefetch,omitempty"`
	// AllowDowngrade signs allow_downgrade into the order: nodes install
	// the packages over newer versions of the same names.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// Force signs force into the order: nodes install the packages again
	// where they are installed already.
	Force bool `json:"force,omitempty"`
	// Uninstall signs an order that runs the packages' uninstall commands
	// (deploy uninstall); a package without one is refused.
	Uninstall bool `json:"uninstall,omitempty"`
	// DryRun resolves the targets and checks the request, and returns
	// what the deployment would be without signing or recording anything.
	DryRun bool `json:"dry_run,omitempty"`
}

// CreateDeployment resolves targets now, signs the order, records every
// target as WAITING_NOTIFICATION and hands the order to the mesh.
func (c *Coordinator) CreateDeployment(req DeployRequest) (*DeploymentView, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, a...))
	}
	now := c.now().UTC().Truncate(time.Second)
	if len(req.Updates) > 0 {
		if len(req.Packages) > 0 || req.DryRun {
			return nil, bad("give either packages or --updates, and --updates without --dry-run")
		}
		ids, err := c.patchPackages(req)
		if err != nil {
			return nil, err
		}
		req.Packages = ids
	}
	if len(req.Packages) == 0 {
		return nil, bad("give at least one package")
	}
	if req.Uninstall && (len(req.Updates) > 0 || req.Force || req.AllowDowngrade || req.Prefetch) {
		return nil, bad("an uninstall takes no --updates, --force, --allow-downgrade or --prefetch")
	}
	notBefore := now
	if req.NotBefore != "" {
		t, err := time.Parse(time.RFC3339, req.NotBefore)
		if err != nil {
			return nil, bad("not_before %q: want RFC 3339 such as 2026-11-28T02:00:00Z", req.NotBefore)
		}
		notBefore = t.UTC().Truncate(time.Second)
	}
	ttl := DefaultOrderLifetime
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return nil, bad("expires %q: want a positive duration such as 24h", req.Expires)
		}
		ttl = d
	}
	if max := c.cfg.maxOrderLifetime(); ttl > max {
		return nil, bad("expires %s: above the coordinator's maximum order lifetime of %s (max_order_lifetime in config.yaml); deploy again later instead of signing a longer-lived order", ttl, max)
	}
	if _, err := core.ParseWindow(req.Window); err != nil {
		return nil, bad("%v", err)
	}
	var timeout int64
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			return nil, bad("timeout %q: want a positive duration such as 10m", req.Timeout)
		}
		timeout = int64(d.Round(time.Second) / time.Second)
	}
	reboot := core.RebootPolicy(req.Reboot)
	if reboot == "" {
		reboot = core.RebootNever
	}
	mode := core.ModeOneByOne
	if req.Bulk {
		mode = core.ModeBulk
	}

	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	prio := 10
	for _, p := range req.Packages {
		rec := c.st.packages[p]
		if rec == nil {
			return nil, fmt.Errorf("%w: package %s", ErrNotFound, p)
		}
		prio = min(prio, rec.Manifest.Priority)
		if req.Uninstall && len(rec.Manifest.Uninstall) == 0 && rec.Manifest.Action != core.ActionDeb {
			return nil, bad("package %s (%s %s) has no uninstall command: build it again with --uninstall, or remove it another way",
				p, rec.Manifest.Name, rec.Manifest.Version)
		}
	}
	if req.Priority != nil {
		prio = *req.Priority
	}
	targets, err := c.resolveLocked(req)
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		v := &DeploymentView{
			State: DeployDryRun, Packages: slices.Clone(req.Packages), Priority: prio, Created: now,
			NotBefore: notBefore, Expires: notBefore.Add(ttl).Truncate(time.Second), Window: req.Window,
			Targets: len(targets), Counts: map[core.State]int{}, Sites: []SiteCount{}, DryRun: true,
		}
		v.Resolved = c.targetViewsLocked(targets)
		return v, nil
	}
	id := newID("d")
	seq := c.st.seq + 1
	o := &core.Order{
		Schema: core.OrderSchema, Kind: core.KindDeploy, ID: id, Seq: seq,
		IssuedAt: now, NotBefore: notBefore, Expires: notBefore.Add(ttl).Truncate(time.Second),
		Packages: slices.Clone(req.Packages), Targets: targets, Priority: prio, Mode: mode,
		Reboot: reboot, Timeout: timeout, Window: req.Window, Prefetch: req.Prefetch,
		AllowDowngrade: req.AllowDowngrade, Force: req.Force, Uninstall: req.Uninstall,
	}
	env, err := core.SignOrder(o, c.orderKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	d := &Deployment{
		ID: id, Packages: o.Packages, Targets: targets, Seq: seq, Order: env, Priority: prio,
		NotBefore: o.NotBefore, Expires: o.Expires, Timeout: timeout, Window: req.Window, Created: now,
		Uninstall: req.Uninstall,
	}
	if err := c.st.write(jsonPair(keyDeploy+id, d), seqPair(seq)); err != nil {
		return nil, err
	}
	c.adoptOrderLocked(d, now)
	c.log.Info("deployment created", "id", id, "seq", seq, "packages", len(o.Packages), "targets", len(targets))
	c.dispatchLocked(env, targets)
	v := c.viewLocked(d, false)
	v.Resolved = c.targetViewsLocked(targets)
	return v, nil
}

// adoptOrderLocked takes into memory a deployment whose record and order
// sequence were just written: the coordinator's highest sequence, the
// deployment, and a WAITING_NOTIFICATION row per target. The caller then
// hands the order to the mesh (dispatchLocked).
func (c *Coordinator) adoptOrderLocked(d *Deployment, now time.Time) {
	c.st.seq = d.Seq
	c.st.deps[d.ID] = d
	rows := make(map[string]*Row, len(d.Targets))
	for _, t := range d.Targets {
		rows[t] = &Row{Node: t, State: core.StateWaiting, Updated: now}
	}
	c.st.rows[d.ID] = rows
}

// TargetView is one node a deployment resolved to.
type TargetView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Site string `json:"site"`
	OS   string `json:"os"`
}

// targetViewsLocked describes the target node IDs, sorted by site and name.
func (c *Coordinator) targetViewsLocked(ids []string) []TargetView {
	out := make([]TargetView, 0, len(ids))
	for _, id := range ids {
		t := TargetView{ID: id}
		if n := c.st.nodes[id]; n != nil {
			t.Name, t.Site, t.OS = n.Name, n.Site, n.OS
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b TargetView) int {
		return strings.Compare(a.Site+"\x00"+a.Name+"\x00"+a.ID, b.Site+"\x00"+b.Name+"\x00"+b.ID)
	})
	return out
}

func newID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// resolveLocked turns selectors into a sorted list of node IDs.
func (c *Coordinator) resolveLocked(req DeployRequest) ([]string, error) {
	if !req.All && len(req.Nodes) == 0 && len(req.Sites) == 0 && len(req.Tags) == 0 {
		return nil, fmt.Errorf("%w: give targets: --node, --site, --tag or --all", ErrNoTargets)
	}
	set := map[string]bool{}
	byName := map[string][]string{}
	for _, n := range c.st.nodes {
		byName[n.Name] = append(byName[n.Name], n.ID)
	}
	for _, want := range req.Nodes {
		if c.st.nodes[want] != nil {
			set[want] = true
			continue
		}
		ids := byName[want]
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: node %q: no enrolled node has that ID or name", ErrNoTargets, want)
		}
		for _, id := range ids {
			set[id] = true
		}
	}
	for _, n := range c.st.nodes {
		if req.All || slices.Contains(req.Sites, n.Site) || hasAny(n.Tags, req.Tags) {
			set[n.ID] = true
		}
	}
	out := make([]string, 0, len(set))
	for id := range set {
		if req.OS != "" && !strings.EqualFold(c.st.nodes[id].OS, req.OS) {
			continue
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: nodes %v sites %v tags %v os %q all=%v", ErrNoTargets, req.Nodes, req.Sites, req.Tags, req.OS, req.All)
	}
	slices.Sort(out)
	return out, nil
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// deployStateLocked is the deployment's state as a whole.
func (c *Coordinator) deployStateLocked(d *Deployment) string {
	if d.Cancelled {
		return DeployCancelled
	}
	rows := c.st.rows[d.ID]
	allFinal, allOK, started := true, true, false
	for _, r := range rows {
		if !r.State.Final() {
			allFinal = false
		} else if !r.State.Installed() {
			allOK = false
		}
		if r.State != core.StateWaiting {
			started = true
		}
	}
	switch {
	case allFinal && allOK:
		return DeployCompleted
	case allFinal:
		return DeployIncomplete
	case !c.now().Before(d.Expires):
		return DeployIncomplete
	case !started && c.now().Before(d.NotBefore):
		return DeployScheduled
	}
	return DeployRunning // due: started, or nodes yet to hear of it
}

// detailCancelledUnheard is the detail of a row CancelDeployment marks
// CANCELLED because its node was never notified. Such a node is a target
// of the cancel order all the same: a push it never got may still be held
// by a relay or a peer, and delivered inside its replay window. Until the
// node reports on the order, sync and pushes send it the cancel order
// (ordersSinceLocked).
const detailCancelledUnheard = "cancelled before notification; the node is sent the cancel order"

// CancelDeployment cancels by LanGuard's rule: allowed while SCHEDULED, or
// while RUNNING/INCOMPLETE with no node mid-install. A signed cancel order
// goes to every node that has not finished, notified or not; nodes never
// notified are marked CANCELLED at once. force skips the mid-install check
// (package delete --force).
func (c *Coordinator) CancelDeployment(id string, force bool) (*DeploymentView, error) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	d := c.st.deps[id]
	if d == nil {
		return nil, fmt.Errorf("%w: deployment %s", ErrNotFound, id)
	}
	if d.Kind == DeployKindGossipKey {
		return nil, fmt.Errorf("%w: %s is a step of a gossip key rotation, which is not cancelled: it ends by itself (relaymesh sites list)", ErrConflict, id)
	}
	state := c.deployStateLocked(d)
	switch state {
	case DeployCancelled:
		return nil, fmt.Errorf("%w: deployment %s is already cancelled", ErrConflict, id)
	case DeployCompleted:
		return nil, fmt.Errorf("%w: deployment %s is completed: nothing to cancel", ErrConflict, id)
	}
	var reach []string
	for node, r := range c.st.rows[id] {
		if r.State == core.StateInstalling && !force {
			return nil, fmt.Errorf("%w: deployment %s: node %s is installing; cancel is allowed when no node is mid-install", ErrConflict, id, node)
		}
		if !r.State.Final() {
			reach = append(reach, node)
		}
	}
	now := c.now().UTC().Truncate(time.Second)
	pairs := []kvPair{}
	d2 := *d
	d2.Cancelled = true
	if len(reach) > 0 {
		slices.Sort(reach)
		seq := c.st.seq + 1
		o := &core.Order{
			Schema: core.OrderSchema, Kind: core.KindCancel, ID: newID("c"), Seq: seq, IssuedAt: now,
			NotBefore: now, Expires: d.Expires.Add(24 * time.Hour), Targets: reach, Priority: d.Priority, Cancels: id,
		}
		env, err := core.SignOrder(o, c.orderKey)
		if err != nil {
			return nil, err
		}
		d2.CancelSeq, d2.CancelOrder = seq, env
		pairs = append(pairs, seqPair(seq))
	}
	pairs = append(pairs, jsonPair(keyDeploy+id, &d2))
	newRows := map[string]*Row{}
	for node, r := range c.st.rows[id] {
		if r.State == core.StateWaiting {
			cp := *r
			cp.State, cp.Detail, cp.Updated = core.StateCancelled, detailCancelledUnheard, now
			newRows[node] = &cp
			pairs = append(pairs, jsonPair(rowKey(id, node), &cp))
		}
	}
	if err := c.st.write(pairs...); err != nil {
		return nil, err
	}
	if d2.CancelSeq > 0 {
		c.st.seq = d2.CancelSeq
	}
	c.st.deps[id] = &d2
	for node, r := range newRows {
		c.st.rows[id][node] = r
	}
	c.log.Info("deployment cancelled", "id", id, "state_was", state, "cancel_order_to", len(reach))
	if d2.CancelOrder != nil {
		c.dispatchLocked(d2.CancelOrder, reach)
	}
	return c.viewLocked(&d2, false), nil
}

// ValidateDeployment clears rows as OCS does: SUCCESS rows, and with all
// also the nodes never notified, which are unaffected (not sent the order).
// Cleared rows are archived, not erased: they leave the counts but stay
// readable (DeploymentArchive, deploy show --archived) with the time they
// were validated.
func (c *Coordinator) ValidateDeployment(id string, all bool) (int, error) {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	d := c.st.deps[id]
	if d == nil {
		return 0, fmt.Errorf("%w: deployment %s", ErrNotFound, id)
	}
	var pairs []kvPair
	d2 := *d
	d2.Unaffected = slices.Clone(d.Unaffected)
	cleared := 0
	remove := map[string]*Row{}
	now := c.now().UTC()
	for node, r := range c.st.rows[id] {
		switch {
		case r.State.Installed() && !r.Validated:
			cp := *r
			cp.Validated, cp.ValidatedAt = true, now
			pairs = append(pairs, jsonPair(rowKey(id, node), &cp))
			cleared++
		case all && r.State == core.StateWaiting:
			d2.Unaffected = append(d2.Unaffected, node)
			cp := *r
			cp.Validated, cp.ValidatedAt = true, now
			remove[node] = &cp
			pairs = append(pairs, kvPair{key: rowKey(id, node)}, jsonPair(archiveKey(id, node), &cp))
			cleared++
		}
	}
	pairs = append(pairs, jsonPair(keyDeploy+id, &d2))
	if err := c.st.write(pairs...); err != nil {
		return 0, err
	}
	c.st.deps[id] = &d2
	for node, r := range c.st.rows[id] {
		if a := remove[node]; a != nil {
			delete(c.st.rows[id], node)
			c.st.archiveLocked(id, a)
		} else if r.State.Installed() && !r.Validated {
			cp := *r
			cp.Validated, cp.ValidatedAt = true, now
			c.st.rows[id][node] = &cp
		}
	}
	return cleared, nil
}
