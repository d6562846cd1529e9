package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// deployForm is the create form's values as typed, so that a refused
// request comes back with them filled in.
type deployForm struct {
	Packages  []string
	Nodes     string
	Sites     []string
	Tags      []string
	OS        string
	All       bool
	NotBefore string
	Window    string
	Expires   string
	Priority  string
	Mode      string // one-by-one or bulk
	Reboot    string
	Timeout   string
	Prefetch  bool
	Downgrade bool
}

func readDeployForm(f url.Values) deployForm {
	return deployForm{
		Packages: f["package"], Nodes: strings.TrimSpace(f.Get("nodes")), Sites: f["site"], Tags: f["tag"],
		OS: f.Get("os"), All: f.Get("all") == "on", NotBefore: strings.TrimSpace(f.Get("not_before")),
		Window: strings.TrimSpace(f.Get("window")), Expires: strings.TrimSpace(f.Get("expires")),
		Priority: strings.TrimSpace(f.Get("priority")), Mode: f.Get("mode"), Reboot: f.Get("reboot"),
		Timeout: strings.TrimSpace(f.Get("timeout")), Prefetch: f.Get("prefetch") == "on",
		Downgrade: f.Get("allow_downgrade") == "on",
	}
}

// request turns the form into the API's request; what the coordinator
// checks itself (window, durations, targets) it is left to check.
func (f deployForm) request() (coordinator.DeployRequest, error) {
	req := coordinator.DeployRequest{
		Packages: f.Packages, Nodes: splitList(f.Nodes), Sites: f.Sites, Tags: f.Tags, OS: f.OS, All: f.All,
		NotBefore: f.NotBefore, Window: f.Window, Expires: f.Expires, Reboot: f.Reboot, Timeout: f.Timeout, Prefetch: f.Prefetch,
		AllowDowngrade: f.Downgrade,
	}
	switch f.Mode {
	case "", "one-by-one":
	case "bulk":
		req.Bulk = true
	default:
		return req, fmt.Errorf("mode %q: want one-by-one or bulk", f.Mode)
	}
	switch core.RebootPolicy(f.Reboot) {
	case "", core.RebootNever, core.RebootIfNeeded, core.RebootAlways:
	default:
		return req, fmt.Errorf("reboot %q: want never, if-needed or always", f.Reboot)
	}
	if f.Priority != "" {
		p, err := strconv.Atoi(f.Priority)
		if err != nil || p < 0 || p > 10 {
			return req, fmt.Errorf("priority %q: want a whole number from 0 to 10, or empty for the packages' own", f.Priority)
		}
		req.Priority = &p
	}
	if len(req.Packages) == 0 {
		return req, fmt.Errorf("no package chosen: pick at least one in the Packages list")
	}
	return req, nil
}

type newData struct {
	Form                      deployForm
	Packages                  []*coordinator.PackageRecord
	SiteOpts, TagOpts, OSOpts []string
	Targets                   []coordinator.NodeView
	PackageNames              []string
	ModeLabel                 string
	// Plan is the coordinator's dry run: times and priority as resolved.
	Plan *coordinator.DeploymentView
}

func (k *Console) formData(f deployForm) newData {
	d := newData{Form: f, Packages: k.c.Packages()}
	sites, tags, oses := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, n := range k.c.Nodes() {
		sites[n.Site], oses[n.OS] = true, true
		for _, t := range n.Tags {
			tags[t] = true
		}
	}
	d.SiteOpts, d.TagOpts, d.OSOpts = sortedKeys(sites), sortedKeys(tags), sortedKeys(oses)
	return d
}

// newForm shows the create form, empty or (posted back from the
// confirmation page) filled in.
func (k *Console) newForm(w http.ResponseWriter, r *http.Request, s *session) {
	f := deployForm{Mode: "one-by-one", Reboot: string(core.RebootNever)}
	if r.Method == http.MethodPost {
		f = readDeployForm(r.PostForm)
	} else if p := r.URL.Query().Get("package"); p != "" {
		f.Packages = []string{p}
	}
	k.render(w, r, s, "new", page{Title: "New deployment", Nav: "new", Data: k.formData(f)})
}

func (k *Console) refuse(w http.ResponseWriter, r *http.Request, s *session, f deployForm, code int, msg string) {
	k.render(w, r, s, "new", page{Title: "New deployment", Nav: "new", Status: code, Error: msg, Data: k.formData(f)})
}

// confirm shows the targets a request resolves to, before anything is
// signed.
func (k *Console) confirm(w http.ResponseWriter, r *http.Request, s *session) {
	f := readDeployForm(r.PostForm)
	req, err := f.request()
	if err != nil {
		k.refuse(w, r, s, f, http.StatusBadRequest, err.Error())
		return
	}
	// A dry run checks the whole request and resolves its targets
	// without signing or recording anything.
	req.DryRun = true
	plan, err := k.c.CreateDeployment(req)
	if err != nil {
		k.refuse(w, r, s, f, statusOf(err), err.Error())
		return
	}
	nodes := map[string]coordinator.NodeView{}
	for _, n := range k.c.Nodes() {
		nodes[n.ID] = n
	}
	d := k.formData(f)
	d.Plan = plan
	for _, t := range plan.Resolved {
		n, ok := nodes[t.ID]
		if !ok {
			n = coordinator.NodeView{NodeRecord: coordinator.NodeRecord{ID: t.ID, Name: t.Name, Site: t.Site, OS: t.OS}}
		}
		d.Targets = append(d.Targets, n)
	}
	d.PackageNames = k.names(f.Packages)
	d.ModeLabel = "one by one (a failure does not stop the rest)"
	if req.Bulk {
		d.ModeLabel = "bulk (first failure stops and rolls back)"
	}
	k.render(w, r, s, "confirm", page{Title: "Confirm deployment", Nav: "new", Data: d})
}

func (k *Console) create(w http.ResponseWriter, r *http.Request, s *session) {
	f := readDeployForm(r.PostForm)
	req, err := f.request()
	if err != nil {
		k.refuse(w, r, s, f, http.StatusBadRequest, err.Error())
		return
	}
	v, err := k.c.CreateDeployment(req)
	if err != nil {
		k.refuse(w, r, s, f, statusOf(err), "Not created: "+err.Error())
		return
	}
	k.sess.setFlash(s, fmt.Sprintf("Deployment %s created for %d nodes.", v.ID, v.Targets))
	http.Redirect(w, r, "/deployments/"+v.ID, http.StatusSeeOther)
}

func has(list []string, v string) bool { return slices.Contains(list, v) }
