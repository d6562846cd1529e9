package coordinator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/coordinator/aptmirror"
	"github.com/relaymesh/relaymesh/core"
)

// A patch deployment (deploy create --updates) names updates, not
// packages. The coordinator resolves, from the targets' latest scans,
// which updates each target needs and the new dependencies apt's
// simulation listed with them, fetches the repository's files through
// its mirror (InRelease checked with the configured keyring, indexes by
// the signed SHA256, each .deb by its index), and publishes them as apt
// packages: one with the indexes (placed into the nodes' apt lists dir,
// so their scans read what the coordinator verified), then one per
// update (one-by-one: each its own apt transaction) or one for all
// (bulk). The order is signed over those packages like any other, so the
// files cross each site's WAN once and spread inside it as fragments.

// Update selectors of DeployRequest.Updates.
const (
	UpdatesSecurity = "security"
	UpdatesAll      = "all"
	// UpdatesLists deploys only the repositories' indexes: the nodes'
	// apt-get update, through the mesh (scan afterwards).
	UpdatesLists = "lists"
)

// ErrUpstream: the repository could not be fetched or did not verify.
var ErrUpstream = errors.New("coordinator: repository")

type updateSel struct {
	name, version string
}

func parseUpdates(sels []string) (security, all, lists bool, names []updateSel, err error) {
	for _, s := range sels {
		switch s {
		case UpdatesLists:
			lists = true
		case UpdatesSecurity:
			security = true
		case UpdatesAll:
			all = true
		default:
			n, v, _ := strings.Cut(s, "=")
			if !validDebName(n) || strings.Contains(s, "=") && v == "" {
				return false, false, false, nil, fmt.Errorf("%w: update %q: want security, all, lists, NAME or NAME=VERSION", ErrBadRequest, s)
			}
			names = append(names, updateSel{n, v})
		}
	}
	if lists && (security || all || len(names) > 0) {
		return false, false, false, nil, fmt.Errorf("%w: updates: lists goes alone (it deploys the indexes only)", ErrBadRequest)
	}
	return security, all, lists, names, nil
}

func validDebName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// patchPackages resolves req.Updates into apt packages published in the
// coordinator's store and returns their IDs: the indexes first.
func (c *Coordinator) patchPackages(req DeployRequest) ([]string, error) {
	if !c.mirror.Configured() {
		return nil, fmt.Errorf("%w: deploy --updates needs the repositories the nodes use in the coordinator's config.yaml (apt: repositories:)", ErrBadRequest)
	}
	security, all, onlyLists, names, err := parseUpdates(req.Updates)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if onlyLists {
		snap, err := c.mirror.Refresh(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
		}
		id, err := c.buildApt(ctx, "apt-lists", listsVersion(snap), snap.Lists, nil, nil, false)
		return []string{id}, err
	}
	c.st.mu.Lock()
	targets, err := c.resolveLocked(req)
	c.st.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var scans []*core.ScanReport
	var unscanned []string
	for _, t := range targets {
		rec, err := c.Inventory(t)
		if err != nil || rec.Report == nil || rec.Report.Error != "" {
			unscanned = append(unscanned, c.nodeName(t))
			continue
		}
		scans = append(scans, rec.Report)
	}
	if len(unscanned) > 0 {
		return nil, fmt.Errorf("%w: %d targets have no good scan (%s): run relaymesh scan on them first, or leave them out",
			ErrBadRequest, len(unscanned), strings.Join(first(unscanned, 5), ", "))
	}
	snap, err := c.mirror.Refresh(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}

	// Per target: the entries to install (updates picked, their
	// dependencies). groups keeps one transaction per picked update.
	type group struct {
		top     *aptmirror.Entry
		upgrade bool                        // picked from a scan's updates: upgrade where installed only
		debs    map[string]*aptmirror.Entry // by SHA256
	}
	groups := map[string]*group{} // by name=version
	var order []string
	rollback := map[string]*aptmirror.Entry{} // bulk: the versions the updates replace, where offered
	for _, r := range scans {
		installed := map[string]bool{}
		for _, p := range r.Installed {
			installed[p.Name] = true
		}
		offered := map[string]core.Package{} // what this node's upgrade would install
		for _, u := range r.Updates {
			offered[u.Name] = core.Package{Name: u.Name, Version: u.Candidate, Arch: u.Arch}
		}
		for _, p := range r.New {
			offered[p.Name] = p
		}
		var picks []*aptmirror.Entry
		fromScan := map[string]bool{}
		for _, u := range r.Updates {
			if all || security && u.Security || slices.ContainsFunc(names, func(s updateSel) bool { return s.name == u.Name && s.version == "" }) {
				e, err := snap.Find(u.Name, u.Candidate, u.Arch)
				if err != nil {
					return nil, fmt.Errorf("%w: update %s %s from the scan of %s: %w", ErrBadRequest, u.Name, u.Candidate, c.nodeName(r.NodeID), err)
				}
				picks = append(picks, e)
				fromScan[e.Name] = true
			}
		}
		for _, s := range names {
			if slices.ContainsFunc(picks, func(e *aptmirror.Entry) bool { return e.Name == s.name }) {
				continue
			}
			e, err := snap.Find(s.name, s.version, "")
			if err != nil {
				return nil, fmt.Errorf("%w: update %s: %w", ErrBadRequest, strings.TrimSuffix(s.name+"="+s.version, "="), err)
			}
			picks = append(picks, e)
		}
		for _, u := range r.Updates {
			if slices.ContainsFunc(picks, func(e *aptmirror.Entry) bool { return e.Name == u.Name }) {
				if e, err := snap.Find(u.Name, u.Installed, u.Arch); err == nil {
					rollback[e.SHA256] = e
				}
			}
		}
		for _, top := range picks {
			key := top.Name + "=" + top.Version
			g := groups[key]
			if g == nil {
				g = &group{top: top, upgrade: fromScan[top.Name], debs: map[string]*aptmirror.Entry{}}
				groups[key] = g
				order = append(order, key)
			} else if !fromScan[top.Name] {
				g.upgrade = false
			}
			// The update and, transitively, each dependency this node's
			// upgrade lists, or that it lacks and the repositories have.
			todo := []*aptmirror.Entry{top}
			for len(todo) > 0 {
				e := todo[0]
				todo = todo[1:]
				if _, seen := g.debs[e.SHA256]; seen {
					continue
				}
				g.debs[e.SHA256] = e
				for _, d := range e.Depends {
					var dep *aptmirror.Entry
					if p, ok := offered[d]; ok {
						dep, _ = snap.Find(p.Name, p.Version, p.Arch)
					} else if !installed[d] && !r.Truncated {
						dep, _ = snap.Find(d, "", "")
					}
					if dep != nil {
						todo = append(todo, dep)
					}
				}
			}
		}
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("%w: nothing to deploy: the last scans of the %d targets list no %s update", ErrBadRequest, len(targets), selName(security, all))
	}
	slices.Sort(order)
	lv := listsVersion(snap)
	ids := make([]string, 0, len(order)+1)
	lists, err := c.buildApt(ctx, "apt-lists", lv, snap.Lists, nil, nil, false)
	if err != nil {
		return nil, err
	}
	ids = append(ids, lists)
	if req.Bulk {
		all, upgrade := map[string]*aptmirror.Entry{}, true
		for _, k := range order {
			upgrade = upgrade && groups[k].upgrade
			for h, e := range groups[k].debs {
				all[h] = e
			}
		}
		id, err := c.buildApt(ctx, "updates", lv, nil, all, rollback, upgrade)
		if err != nil {
			return nil, err
		}
		return append(ids, id), nil
	}
	for _, k := range order {
		g := groups[k]
		id, err := c.buildApt(ctx, g.top.Name, g.top.Version, nil, g.debs, nil, g.upgrade)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// listsVersion is the indexes package's version: the newest Release
// date, so the same indexes make the same package.
func listsVersion(snap *aptmirror.Snapshot) string {
	if snap.Date.IsZero() {
		return "0"
	}
	return snap.Date.UTC().Format("20060102150405")
}

func selName(security, all bool) string {
	switch {
	case all:
		return "available"
	case security:
		return "security"
	}
	return "named"
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

func (c *Coordinator) nodeName(id string) string {
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if n := c.st.nodes[id]; n != nil && n.Name != "" {
		return n.Name
	}
	return id
}

// buildApt publishes an apt package of lists and .debs (fetched and
// checked by the mirror) and returns its ID. The archive is built the
// same way every time (sorted, no times), so the same files make the
// same package. upgrade marks a package of updates the scans found: a
// node upgrades what it has installed and installs nothing new but their
// dependencies (apt-get --only-upgrade), so a target that lacks the
// package is left without it.
// rollback are the versions a bulk transaction replaces (rollback/): a
// node whose transaction fails installs them again.
func (c *Coordinator) buildApt(ctx context.Context, name, version string, lists []aptmirror.ListFile, debs, rollback map[string]*aptmirror.Entry, upgrade bool) (string, error) {
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	add := func(path string, b []byte) error {
		return errors.Join(tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}),
			func() error { _, err := tw.Write(b); return err }())
	}
	slices.SortFunc(lists, func(a, b aptmirror.ListFile) int { return strings.Compare(a.Name, b.Name) })
	for _, l := range lists {
		if err := add("lists/"+l.Name, l.Data); err != nil {
			return "", err
		}
	}
	if upgrade {
		if err := add(core.AptUpgradeOnly, nil); err != nil {
			return "", err
		}
	}
	arch := "any"
	for _, set := range []struct {
		dir  string
		debs map[string]*aptmirror.Entry
	}{{"debs", debs}, {"rollback", rollback}} {
		keys := make([]string, 0, len(set.debs))
		for k := range set.debs {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int {
			return strings.Compare(set.debs[a].Name+"_"+set.debs[a].Version, set.debs[b].Name+"_"+set.debs[b].Version)
		})
		for _, k := range keys {
			e := set.debs[k]
			b, err := c.mirror.FetchDeb(ctx, e)
			if err != nil {
				return "", fmt.Errorf("%w: %w", ErrUpstream, err)
			}
			if a := goArch(e.Arch); a != "any" {
				arch = a
			}
			if err := add(fmt.Sprintf("%s/%s_%s_%s.deb", set.dir, e.Name, strings.ReplaceAll(e.Version, ":", "%3a"), e.Arch), b); err != nil {
				return "", err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	m := core.Manifest{Name: name, Version: version, OS: "linux", Arch: arch, Action: core.ActionApt, Priority: 5}
	rec, err := c.BuildPackage(m, &buf, 1<<20)
	if err != nil {
		return "", err
	}
	return rec.ID, nil
}

// goArch is the manifest's architecture of a Debian architecture.
func goArch(deb string) string {
	switch deb {
	case "amd64", "arm64":
		return deb
	case "i386":
		return "386"
	case "armhf", "armel":
		return "arm"
	}
	return "any"
}
