package console

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/relaymesh/relaymesh/coordinator"
)

// nodeFilter is the fleet page's search.
type nodeFilter struct {
	Q, Site, Tag, OS, State string
}

func (f nodeFilter) match(n coordinator.NodeView) bool {
	if f.Q != "" {
		q := strings.ToLower(f.Q)
		if !strings.Contains(strings.ToLower(n.Name), q) && !strings.Contains(strings.ToLower(n.ID), q) {
			return false
		}
	}
	if f.Site != "" && n.Site != f.Site {
		return false
	}
	if f.Tag != "" && !slices.Contains(n.Tags, f.Tag) {
		return false
	}
	if f.OS != "" && !strings.EqualFold(n.OS, f.OS) {
		return false
	}
	switch f.State {
	case "alive":
		return n.Alive
	case "offline":
		return !n.Alive
	case "relay":
		return n.Alive && n.Relay
	case "warning":
		return n.ClockWarning != "" || len(n.UnreachableBy) > 0
	}
	return true
}

type versionCount struct {
	Version string
	Nodes   int
}

type siteRow struct {
	coordinator.SiteView
	Versions []versionCount
	Relays   []relay
}

// relay is a site's relay as the page shows it: the name, the ID on hover.
type relay struct{ Name, ID string }

// relayOf splits SiteView's "name (id)".
func relayOf(s string) relay {
	name, id, ok := strings.Cut(s, " (")
	if !ok {
		return relay{Name: s}
	}
	return relay{Name: name, ID: strings.TrimSuffix(id, ")")}
}

type fleetData struct {
	Sites                     []siteRow
	Nodes                     []coordinator.NodeView
	Total                     int
	Filter                    nodeFilter
	SiteOpts, TagOpts, OSOpts []string
	States                    []string
	PackageBytes              int64
	Packages                  int
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (k *Console) fleet(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	f := nodeFilter{Q: strings.TrimSpace(q.Get("q")), Site: q.Get("site"), Tag: q.Get("tag"), OS: q.Get("os"), State: q.Get("state")}
	d := fleetData{Filter: f, States: []string{"alive", "offline", "relay", "warning"}}
	if f.State != "" && !slices.Contains(d.States, f.State) {
		k.fail(w, r, s, http.StatusBadRequest, fmt.Sprintf("state %q: want one of %s, or none", f.State, strings.Join(d.States, ", ")))
		return
	}
	nodes := k.c.Nodes()
	sites, tags, oses := map[string]bool{}, map[string]bool{}, map[string]bool{}
	versions := map[string]map[string]int{}
	for _, n := range nodes {
		sites[n.Site], oses[n.OS] = true, true
		for _, t := range n.Tags {
			tags[t] = true
		}
		if versions[n.Site] == nil {
			versions[n.Site] = map[string]int{}
		}
		versions[n.Site][n.Version]++
		if f.match(n) {
			d.Nodes = append(d.Nodes, n)
		}
	}
	d.Total = len(nodes)
	d.SiteOpts, d.TagOpts, d.OSOpts = sortedKeys(sites), sortedKeys(tags), sortedKeys(oses)
	for _, sv := range k.c.Sites() {
		row := siteRow{SiteView: sv}
		for _, r := range sv.Relays {
			row.Relays = append(row.Relays, relayOf(r))
		}
		for v, n := range versions[sv.Site] {
			row.Versions = append(row.Versions, versionCount{v, n})
		}
		slices.SortFunc(row.Versions, func(a, b versionCount) int { return strings.Compare(a.Version, b.Version) })
		d.Sites = append(d.Sites, row)
	}
	for _, p := range k.c.Packages() {
		d.PackageBytes += p.Manifest.Size
		d.Packages++
	}
	k.render(w, r, s, "fleet", page{Title: "Fleet", Nav: "fleet", Data: d})
}

// packagesData is the packages page: the published packages, and the
// updates the nodes' last scans found missing.
type packagesData struct {
	Packages []*coordinator.PackageRecord
	Updates  *coordinator.UpdatesReport
	More     int // updates not shown
}

// maxUpdateRows caps the updates listed on the page; the CLI lists all.
const maxUpdateRows = 25

func (k *Console) packages(w http.ResponseWriter, r *http.Request, s *session) {
	d := packagesData{Packages: k.c.Packages(), Updates: k.c.Updates(coordinator.UpdatesFilter{})}
	if n := len(d.Updates.Updates); n > maxUpdateRows {
		d.Updates.Updates, d.More = d.Updates.Updates[:maxUpdateRows], n-maxUpdateRows
	}
	k.render(w, r, s, "packages", page{Title: "Packages", Nav: "packages", Data: d})
}

// pkgNames maps package IDs to "name version".
func (k *Console) pkgNames() map[string]string {
	out := map[string]string{}
	for _, p := range k.c.Packages() {
		out[p.ID] = p.Manifest.Name + " " + p.Manifest.Version
	}
	return out
}

func (k *Console) names(ids []string) []string {
	m := k.pkgNames()
	out := make([]string, len(ids))
	for i, id := range ids {
		if n := m[id]; n != "" {
			out[i] = n
		} else {
			out[i] = shortID(id)
		}
	}
	return out
}

type depRow struct {
	*coordinator.DeploymentView
	Names                    []string
	Success, Failed, Pending int
}

func (k *Console) deployments(w http.ResponseWriter, r *http.Request, s *session) {
	var rows []depRow
	for _, v := range k.c.Deployments() {
		row := depRow{DeploymentView: v, Names: k.names(v.Packages)}
		for _, sc := range v.Sites {
			row.Success += sc.Success
			row.Failed += sc.Failed
			row.Pending += sc.Pending
		}
		rows = append(rows, row)
	}
	k.render(w, r, s, "deployments", page{Title: "Deployments", Nav: "deployments", Data: rows})
}

type deploymentData struct {
	V     *coordinator.DeploymentView
	Names []string
	Live  liveData
}

func (k *Console) deploymentPage(w http.ResponseWriter, r *http.Request, s *session, code int, errMsg string) {
	v, err := k.c.Deployment(r.PathValue("id"))
	if err != nil {
		k.fail(w, r, s, statusOf(err), err.Error())
		return
	}
	k.render(w, r, s, "deployment", page{Title: "Deployment " + v.ID, Nav: "deployments", Status: code, Error: errMsg,
		Data: deploymentData{V: v, Names: k.names(v.Packages), Live: k.liveOf(v)}})
}

func (k *Console) deployment(w http.ResponseWriter, r *http.Request, s *session) {
	k.deploymentPage(w, r, s, 0, "")
}

// cancelRule is LanGuard's rule, shown with a refusal.
const cancelRule = "A deployment can be cancelled while it is SCHEDULED, or while it is RUNNING or INCOMPLETE with no node mid-install (LanGuard's rule): wait until the installing nodes finish, then cancel again."

func (k *Console) cancel(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	v, err := k.c.CancelDeployment(id, false)
	if err != nil {
		code := statusOf(err)
		if code == http.StatusNotFound {
			k.fail(w, r, s, code, err.Error())
			return
		}
		msg := "Cancel refused: " + err.Error() + "."
		if code == http.StatusConflict {
			msg += " " + cancelRule
		}
		k.deploymentPage(w, r, s, code, msg)
		return
	}
	k.sess.setFlash(s, fmt.Sprintf("Deployment %s cancelled: a signed cancel order goes to the nodes that had not finished.", v.ID))
	http.Redirect(w, r, "/deployments/"+v.ID, http.StatusSeeOther)
}

func (k *Console) validate(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	all := r.PostForm.Get("all") == "on"
	n, err := k.c.ValidateDeployment(id, all)
	if err != nil {
		if statusOf(err) == http.StatusNotFound {
			k.fail(w, r, s, http.StatusNotFound, err.Error())
			return
		}
		k.deploymentPage(w, r, s, statusOf(err), "Validate failed: "+err.Error())
		return
	}
	what := "successful rows"
	if all {
		what = "successful rows and never-notified nodes"
	}
	k.sess.setFlash(s, fmt.Sprintf("Validated: %d %s cleared.", n, what))
	http.Redirect(w, r, "/deployments/"+id, http.StatusSeeOther)
}
