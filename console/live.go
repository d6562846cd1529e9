package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// stateOrder is the lifecycle order counts are shown in.
var stateOrder = []core.State{
	core.StateWaiting, core.StateNotified, core.StateDownloading, core.StateDownloaded,
	core.StateInstalling, core.StateSuccess, core.StateCancelled,
}

type stateCount struct {
	State core.State
	N     int
}

type siteBar struct {
	coordinator.SiteCount
	Done int
}

type nodeRow struct {
	coordinator.RowView
	Duration string
	Tail     string
}

// liveData is the part of a deployment's page that changes.
type liveData struct {
	ID         string
	State      string
	Done       bool
	Targets    int
	Validated  int
	Finished   int
	Counts     []stateCount
	Sites      []siteBar
	Rows       []nodeRow
	Completion template.HTML
	Bytes      template.HTML
}

// start is when a deployment's clock starts: created, or not-before when later.
func start(v *coordinator.DeploymentView) time.Time {
	if v.NotBefore.After(v.Created) {
		return v.NotBefore
	}
	return v.Created
}

func (k *Console) liveOf(v *coordinator.DeploymentView) liveData {
	d := liveData{ID: v.ID, State: v.State, Done: v.Done, Targets: v.Targets, Validated: v.Validated}
	for _, st := range stateOrder {
		if n := v.Counts[st]; n > 0 {
			d.Counts = append(d.Counts, stateCount{st, n})
		}
	}
	var errs []core.State
	for st := range v.Counts {
		if !slices.Contains(stateOrder, st) {
			errs = append(errs, st)
		}
	}
	slices.Sort(errs)
	for _, st := range errs {
		d.Counts = append(d.Counts, stateCount{st, v.Counts[st]})
	}
	for _, sc := range v.Sites {
		d.Sites = append(d.Sites, siteBar{SiteCount: sc, Done: sc.Success + sc.Failed})
	}
	t0, now := start(v), k.opt.Now()
	for _, r := range v.Nodes {
		row := nodeRow{RowView: r, Duration: "—", Tail: tail(r.Output, 12, 2048)}
		if r.State.Final() {
			d.Finished++
		}
		switch {
		case r.State.Final() && !r.LastReport.IsZero():
			row.Duration = duration(r.Updated.Sub(t0))
		case r.State != core.StateWaiting && !r.State.Final():
			// Whole seconds: the live stream sends the page part only when
			// it changed, so a finer clock would resend it on every poll.
			row.Duration = now.Sub(t0).Truncate(time.Second).String() + " so far"
		}
		d.Rows = append(d.Rows, row)
	}
	sites := map[string]coordinator.SiteView{}
	for _, s := range k.c.Sites() {
		sites[s.Site] = s
	}
	var size int64
	for _, id := range v.Packages {
		if p, err := k.c.Package(id); err == nil {
			size += p.Manifest.Size
		}
	}
	d.Completion = completionPlot(v, t0)
	d.Bytes = bytesPlot(v, sites, size)
	return d
}

func (k *Console) renderLive(v *coordinator.DeploymentView) ([]byte, error) {
	var buf bytes.Buffer
	err := k.live.Execute(&buf, k.liveOf(v))
	return buf.Bytes(), err
}

// liveFragment is the live part alone, for a script that fetches it.
func (k *Console) liveFragment(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := k.c.Deployment(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	b, err := k.renderLive(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}

// events streams the live part each time it changes (server-sent events:
// "progress" with the HTML, then "done" once the deployment is over).
func (k *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if _, err := k.c.Deployment(id); err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(k.opt.Poll)
	defer tick.Stop()
	end := time.NewTimer(k.opt.StreamFor)
	defer end.Stop()
	var last []byte
	beat := 0
	for {
		v, err := k.c.Deployment(id)
		if err != nil {
			return
		}
		b, err := k.renderLive(v)
		if err != nil {
			k.opt.Logger.Error("console: render live", "deployment", id, "err", err)
			return
		}
		switch {
		case !bytes.Equal(b, last):
			writeEvent(w, "progress", b)
			last, beat = b, 0
		case beat*int(k.opt.Poll) >= int(15*time.Second):
			fmt.Fprint(w, ": keep-alive\n\n")
			beat = 0
		}
		if v.Done {
			writeEvent(w, "done", []byte(v.State))
			rc.Flush()
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		beat++
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}

func writeEvent(w http.ResponseWriter, name string, data []byte) {
	var b strings.Builder
	b.WriteString("event: " + name + "\n")
	for _, line := range strings.Split(string(data), "\n") {
		b.WriteString("data: " + strings.TrimRight(line, "\r") + "\n")
	}
	b.WriteString("\n")
	fmt.Fprint(w, b.String())
}
